// Packing layer: weight panels, folded int32 bias and per-channel requantization arrays,
// computed once per weight (docs/native.md, "Packing" and "Compensation algebra").
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <unordered_map>

#include "conv.h"

namespace lowp {

namespace {
int round_up(int v, int m) { return (v + m - 1) / m * m; }

// Panels equal byte for byte, with the same layout, are one copy: a process-wide table of
// the live panels by a hash of their bytes, each candidate compared in full (memcmp), so a
// collision costs a comparison and never shares unequal panels. An entry dies with the last
// ConvOp holding its panels.
uint64_t panels_hash(const Panels& pk) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ uint64_t(pk.bytes);
  auto mix = [&h](uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdull;
  };
  mix(uint64_t(pk.groups));
  mix(uint64_t(pk.npanels));
  mix(uint64_t(pk.mg));
  mix(uint64_t(pk.k4));
  const int8_t* d = pk.data.data() + pk.off0;
  int64_t i = 0;
  for (; i + 8 <= pk.bytes; i += 8) {
    uint64_t v;
    std::memcpy(&v, d + i, 8);
    mix(v);
  }
  for (; i < pk.bytes; ++i) mix(uint64_t(uint8_t(d[i])));
  return h;
}

bool same_panels(const Panels& a, const Panels& b) {
  return a.bytes == b.bytes && a.groups == b.groups && a.npanels == b.npanels && a.mg == b.mg &&
         a.k4 == b.k4 && a.off == b.off &&
         std::memcmp(a.data.data() + a.off0, b.data.data() + b.off0, size_t(a.bytes)) == 0;
}

std::mutex g_panels_mu;
std::unordered_multimap<uint64_t, std::weak_ptr<Panels>> g_panels;  // hash -> live panels

std::shared_ptr<Panels> share_panels(std::shared_ptr<Panels> pk) {
  static size_t sweep_at = 256;
  const uint64_t h = panels_hash(*pk);
  std::lock_guard<std::mutex> lk(g_panels_mu);
  auto& live = g_panels;
  auto [it, end] = live.equal_range(h);
  while (it != end) {
    if (auto q = it->second.lock()) {
      if (same_panels(*q, *pk)) return q;
      ++it;
    } else {
      it = live.erase(it);
    }
  }
  if (live.size() >= sweep_at) {  // drop the entries of dead panels now and then
    for (auto i = live.begin(); i != live.end();) i = i->second.expired() ? live.erase(i) : ++i;
    sweep_at = std::max<size_t>(256, 2 * live.size());
  }
  live.emplace(h, pk);
  return pk;
}
}  // namespace

int64_t live_panels() {
  std::lock_guard<std::mutex> lk(g_panels_mu);
  int64_t n = 0;
  for (const auto& e : g_panels) n += !e.second.expired();
  return n;
}

ConvOp::ConvOp(const ConvParams& p, const uint8_t* w, const int32_t* w_zp, const int32_t* bias,
               const float* scale, const int32_t* mult, const int32_t* lshift,
               const int32_t* rshift)
    : p_(p) {
  if (p.groups < 1 || p.cin % p.groups || p.cout % p.groups)
    throw std::invalid_argument("channels are not divisible by groups");
  cg_ = p.cin / p.groups;
  mg_ = p.cout / p.groups;
  taps_ = p.kd * p.kh * p.kw;
  rowtaps_ = p.groups == 1 && p.dw == 1 && p.kw > 1 && cg_ % 4 != 0 &&
             !(p.allow_depthwise && cg_ == 1 && mg_ == 1);
  if (rowtaps_) {
    cgp_ = cg_;  // input pixels keep their channel count
    gtaps_ = p.kd * p.kh;
    tapk_ = p.kw * cg_;
    kc4_ = round_up(tapk_, 4) / 4;
  } else {
    cgp_ = round_up(cg_, 4);
    gtaps_ = taps_;
    tapk_ = cgp_;
    kc4_ = cgp_ / 4;
  }
  npanels_ = (mg_ + kPanel - 1) / kPanel;
  za_ = p.x_zp + (p.x_signed ? 128 : 0);
  const int delta = p.w_signed ? 0 : 128;
  const int cpad = round_up(p.cout, kPanel) + kPanel;
  auto wval = [&](int64_t i) { return p.w_signed ? int32_t(int8_t(w[i])) : int32_t(w[i]); };

  // (N1) w8 = w - delta in int8; zw' = w_zp - delta; za' = x_zp + 128*[x signed].
  // bias' = bias - za' * colsum(w8) + K * za' * zw'   (all modulo 2^32)
  bias_.assign(cpad, 0);
  zw_.assign(cpad, 0);
  scale_.assign(cpad, 1.0f);
  mult_.assign(cpad, 1 << 30);
  lshift_.assign(cpad, 0);
  rshift_.assign(cpad, 0);
  dw_bias_.assign(cpad, 0);
  const int64_t kreal = int64_t(taps_) * cg_;
  // |v| <= 255 * sum |w - zw| + |bias| for v = sum (a - za)(w - zw) + bias, |a - za| <= 255
  bool bounded = !p.fixedpoint && p.out_zp >= -(1 << 24) && p.out_zp <= (1 << 24);
  for (int m = 0; m < p.cout && bounded; ++m) {
    double wabs = 0;
    for (int64_t i = 0; i < kreal; ++i) wabs += std::abs(double(wval(m * kreal + i)) - w_zp[m]);
    const double vmax = 255.0 * wabs + (bias ? std::abs(double(bias[m])) : 0.0);
    const double s = std::abs(double(scale[m]));
    bounded = vmax < 2147483647.0 && std::isfinite(s) && vmax * s + std::abs(double(p.out_zp)) + 1.0 < 1073741824.0;
  }
  const bool full_range = (p.qmin == -128 && p.qmax == 127) || (p.qmin == 0 && p.qmax == 255);
  for (int m = 0; m < p.cout; ++m) {
    uint32_t colsum = 0;
    for (int64_t i = 0; i < kreal; ++i) colsum += uint32_t(wval(m * kreal + i) - delta);
    const uint32_t zwp = uint32_t(w_zp[m] - delta), za = uint32_t(za_);
    const uint32_t b = bias ? uint32_t(bias[m]) : 0u;
    bias_[m] = int32_t(b - za * colsum + uint32_t(kreal) * za * zwp);
    zw_[m] = int32_t(zwp);
    if (zwp != 0) need_rowsum_ = true;
    dw_bias_[m] = int32_t(b);
    scale_[m] = scale[m];
    mult_[m] = mult[m];
    lshift_[m] = lshift[m];
    rshift_[m] = rshift[m];
  }
  epi_.bias = bias_.data();
  epi_.zw = need_rowsum_ ? zw_.data() : nullptr;
  epi_.scale = scale_.data();
  epi_.mult = mult_.data();
  epi_.lshift = lshift_.data();
  epi_.rshift = rshift_.data();
  epi_.zp = p.out_zp;
  epi_.qmin = p.qmin;
  epi_.qmax = p.qmax;
  epi_.fixedpoint = p.fixedpoint;
  epi_.saturate_only = bounded && full_range;
  dw_epi_ = epi_;
  dw_epi_.bias = dw_bias_.data();
  dw_epi_.zw = nullptr;

  depthwise_ = p.allow_depthwise && cg_ == 1 && mg_ == 1;
  if (depthwise_) {
    // [kd*kh rows][ceil(kw/2) pairs][cp channels] of int16 pairs (w[2j] - zp, w[2j+1] - zp).
    const int cp = round_up(p.cin, 16), nrows = p.kd * p.kh, npairs = (p.kw + 1) / 2;
    dw_w_.assign(int64_t(nrows) * npairs * cp, 0);
    for (int c = 0; c < p.cin; ++c)
      for (int r = 0; r < nrows; ++r)
        for (int j = 0; j < npairs; ++j) {
          const int64_t base = (int64_t(c) * nrows + r) * p.kw;
          const int32_t lo = wval(base + 2 * j) - w_zp[c];
          const int32_t hi = 2 * j + 1 < p.kw ? wval(base + 2 * j + 1) - w_zp[c] : 0;
          dw_w_[(int64_t(r) * npairs + j) * cp + c] =
              int32_t(uint32_t(uint16_t(int16_t(lo))) | (uint32_t(uint16_t(int16_t(hi))) << 16));
        }
    // The quad kernel computes sum x_u * w8 and relies on the folded bias' alone, which is
    // exact only without the zw' * rowsum term (zw' = 0 for every channel).
    if (p.kd == 1 && p.kh == 3 && p.kw == 3 && p.dw == 1 && (p.sw == 1 || p.sw == 2) &&
        !need_rowsum_)
      pack_depthwise_quads(w);
    if (p.kd == 1 && p.kh > 1 && p.kw == 1 && p.pw0 == 0 && p.pw1 == 0) {
      // (cout, 1, 1, kh, 1) weights are the (cout, 1, 1, 1, kh) ones byte for byte
      ConvParams q = p;
      std::swap(q.kh, q.kw), std::swap(q.sh, q.sw), std::swap(q.dh, q.dw);
      std::swap(q.ph0, q.pw0), std::swap(q.ph1, q.pw1);
      by_width_ = std::make_unique<ConvOp>(q, w, w_zp, bias, scale, mult, lshift, rshift);
    }
    return;
  }

  // Panels per group: [tap][k4][wp][4] int8, wp = round_up(valid columns, 16).
  auto pk = std::make_shared<Panels>();
  pk->groups = p.groups;
  pk->npanels = npanels_;
  pk->mg = mg_;
  pk->k4 = gtaps_ * kc4_;
  pk->off.resize(int64_t(p.groups) * npanels_);
  int64_t total = 0;
  for (int g = 0; g < p.groups; ++g)
    for (int pn = 0; pn < npanels_; ++pn) {
      pk->off[g * npanels_ + pn] = total;
      const int wp = round_up(std::min(kPanel, mg_ - pn * kPanel), 16);
      total += int64_t(gtaps_) * kc4_ * 4 * wp;
    }
  pk->data.assign(total + 64, 0);
  pk->off0 = align64_offset(pk->data.data());
  pk->bytes = total;
  for (int g = 0; g < p.groups; ++g)
    for (int pn = 0; pn < npanels_; ++pn) {
      const int nvalid = std::min(kPanel, mg_ - pn * kPanel), wp = round_up(nvalid, 16);
      int8_t* dst = pk->data.data() + pk->off0 + pk->off[g * npanels_ + pn];
      for (int t = 0; t < gtaps_; ++t)
        for (int k4 = 0; k4 < kc4_; ++k4)
          for (int j = 0; j < nvalid; ++j)
            for (int q = 0; q < 4; ++q) {
              // byte 4*k4+q of GEMM tap t: channel c of kernel tap `tap`
              int c = 4 * k4 + q, tap = t;
              if (rowtaps_) {
                if (c >= tapk_) continue;
                tap = t * p.kw + c / cg_;
                c %= cg_;
              } else if (c >= cg_) {
                continue;
              }
              const int m = g * mg_ + pn * kPanel + j;
              dst[((int64_t(t) * kc4_ + k4) * wp + j) * 4 + q] =
                  int8_t(wval((int64_t(m) * cg_ + c) * taps_ + tap) - delta);
            }
    }
  panels_ = share_panels(std::move(pk));
}

// The panels again in isa's own layout (IsaTable::pack_panel), for the calls on that path;
// the shared layout stays for the other paths.
const Panels::Own& Panels::own(const IsaTable& isa) {
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& o : own_)
    if (o->isa == &isa) return *o;
  auto o = std::make_unique<Own>();
  o->isa = &isa;
  o->off.resize(off.size());
  int64_t total = 0;
  for (int g = 0; g < groups; ++g)
    for (int pn = 0; pn < npanels; ++pn) {
      o->off[g * npanels + pn] = total;
      const int wp = round_up(std::min(kPanel, mg - pn * kPanel), 16);
      total += round_up(int(isa.panel_bytes(k4, wp)), 64);
    }
  o->data.assign(total + 64, 0);
  o->off0 = align64_offset(o->data.data());
  for (int g = 0; g < groups; ++g)
    for (int pn = 0; pn < npanels; ++pn) {
      const int wp = round_up(std::min(kPanel, mg - pn * kPanel), 16);
      isa.pack_panel(panel(g * npanels + pn), k4, wp,
                     o->data.data() + o->off0 + o->off[g * npanels + pn]);
    }
  own_.push_back(std::move(o));
  return *own_.back();
}

// Quad depthwise weights: per block of width bw = 16V starting at channel cb (dw_quad_block),
// 24 * bw bytes at 24 * cb: [kernel column j][set s][vector k][4V channels][4 rows] int8,
// set 0 = (w0j, w1j, w2j, 0) for the first output row of a quad, set 1 = (0, w0j, w1j, w2j)
// for the second. Vector k, lane L, dword i is channel cb + 16L + 4k + i; the epilogue arrays
// (folded bias', scale, fixed-point multiplier and shifts) use the same order.
void ConvOp::pack_depthwise_quads(const uint8_t* w) {
  const int C = p_.cin, delta = p_.w_signed ? 0 : 128;
  const int cpad = round_up(C, kPanel) + kPanel;
  auto w8 = [&](int c, int r, int j) {
    const int64_t i = (int64_t(c) * 3 + r) * 3 + j;
    return int8_t((p_.w_signed ? int32_t(int8_t(w[i])) : int32_t(w[i])) - delta);
  };
  dwq_w_.assign(size_t(24) * cpad + 64, 0);
  dwq0_ = align64_offset(dwq_w_.data());
  dwq_bias_.assign(cpad, 0);
  dwq_mult_.assign(cpad, 1 << 30);
  dwq_lshift_.assign(cpad, 0);
  dwq_rshift_.assign(cpad, 0);
  dwq_scale_.assign(cpad, 1.0f);
  for (int cb = 0; cb < C;) {
    const int bw = dw_quad_block(C - cb), v4 = bw / 4;  // v4 = 4V channels per vector
    int8_t* blk = dwq_w_.data() + dwq0_ + int64_t(24) * cb;
    for (int pos = 0; pos < bw; ++pos) {
      const int k = pos / v4, lane = (pos % v4) / 4, i = pos % 4;
      const int c = cb + 16 * lane + 4 * k + i;
      if (c >= C) continue;
      dwq_bias_[cb + pos] = bias_[c];
      dwq_scale_[cb + pos] = scale_[c];
      dwq_mult_[cb + pos] = mult_[c];
      dwq_lshift_[cb + pos] = lshift_[c];
      dwq_rshift_[cb + pos] = rshift_[c];
      for (int j = 0; j < 3; ++j)
        for (int r = 0; r < 3; ++r) {
          blk[((j * 2 + 0) * 4) * v4 * 4 + 4 * pos + r] = w8(c, r, j);
          blk[((j * 2 + 1) * 4) * v4 * 4 + 4 * pos + r + 1] = w8(c, r, j);
        }
    }
    cb += bw;
  }
  dwq_epi_ = epi_;
  dwq_epi_.bias = dwq_bias_.data();
  dwq_epi_.zw = nullptr;
  dwq_epi_.scale = dwq_scale_.data();
  dwq_epi_.mult = dwq_mult_.data();
  dwq_epi_.lshift = dwq_lshift_.data();
  dwq_epi_.rshift = dwq_rshift_.data();
  dwq_ = true;
}

}  // namespace lowp
