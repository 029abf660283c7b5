// Driver layer: input preparation, tiling over rows/panels, remainders, threads; calls the
// microkernels of the active ISA table. Every output is computed by exactly one task, so
// results never depend on the thread count.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "conv.h"
#include "dispatch.h"
#include "threadpool.h"

namespace lowp {

namespace {
// Below about this many MACs per thread (a few microseconds of work), handing work to
// another thread costs more than it saves; the pool's workers spin between the operators
// of a model run, so the hand-off itself is cheap.
constexpr int64_t kMinMacsPerThread = int64_t(1) << 19;

int threads_for(int64_t macs, int nthreads) {
  return int(std::max<int64_t>(1, std::min<int64_t>(nthreads, macs / kMinMacsPerThread)));
}

// The outputs along one axis whose whole window lies inside the input (no padding): [lo, hi).
struct Inside {
  int64_t lo, hi;
  bool has(int64_t i) const { return i >= lo && i < hi; }
};

Inside inside_outputs(int64_t in, int64_t out, int p0, int k, int s, int d) {
  const int64_t lo = std::min<int64_t>(out, (int64_t(p0) + s - 1) / s);
  const int64_t last = in - 1 - int64_t(k - 1) * d + p0;  // the last inside window start
  const int64_t hi = last < 0 ? 0 : std::min<int64_t>(out, last / s + 1);
  return {lo, std::max(lo, hi)};
}

// The output pixel (b, od, oh, ow) of flat output row m, stepped to the next row like an
// odometer rather than divided out for each row. It holds its own copy of the output
// extents, so stores through the rows' pointers cannot force their reload.
struct OutputPixel {
  int64_t b, od, oh, ow;
  const int64_t d, h, w;
  OutputPixel(int64_t m, int64_t d_, int64_t h_, int64_t w_)
      : b(m / (d_ * h_ * w_)), od(m / (h_ * w_) % d_), oh(m / w_ % h_), ow(m % w_),
        d(d_), h(h_), w(w_) {}
  // to the next row; true when a new output row (ow back at 0) starts
  bool next() {
    if (++ow < w) return false;
    ow = 0;
    if (++oh == h) {
      oh = 0;
      if (++od == d) {
        od = 0;
        ++b;
      }
    }
    return true;
  }
};

int64_t out_len(int64_t in, int p0, int p1, int k, int s, int d) {
  const int64_t span = int64_t(k - 1) * d + 1, padded = in + p0 + p1;
  if (padded < span) return -1;
  return (padded - span) / s + 1;
}
}  // namespace

OutDims ConvOp::out_dims(int64_t d, int64_t h, int64_t w) const {
  return {out_len(d, p_.pd0, p_.pd1, p_.kd, p_.sd, p_.dd),
          out_len(h, p_.ph0, p_.ph1, p_.kh, p_.sh, p_.dh),
          out_len(w, p_.pw0, p_.pw1, p_.kw, p_.sw, p_.dw)};
}

void ConvOp::run(const uint8_t* x, int64_t n, int64_t d, int64_t h, int64_t w, uint8_t* y) {
  const OutDims o = out_dims(d, h, w);
  if (o.d < 1 || o.h < 1 || o.w < 1) throw std::invalid_argument("kernel larger than padded input");
  if (n == 0) return;
  const IsaTable& isa = *active_table();
  int nthreads = p_.threads > 0 ? p_.threads : ThreadPool::max_threads();
  std::lock_guard<std::mutex> lk(mu_);
  if (depthwise_) {
    run_depthwise(isa, x, n, d, h, w, y, nthreads);
    return;
  }
  const int64_t k_bytes = int64_t(4) * gtaps_ * kc4_;
  // (also) a multi-tap GEMM with less than one 64-byte K block per tap, fewer than 64 output
  // channels and a reduction of at most 1 KB: the tile path fills narrow tiles and loses to
  // VNNI registers (docs/native.md: 3x3 16->16 at 56x56 1.7x, 7x7 3->16 1.6x); with 64
  // output channels the tiles win (7x7 3->64 0.7x, 3x3 32->64 0.5x VNNI's time)
  const bool narrow_taps = gtaps_ > 1 && 4 * kc4_ < 64 && mg_ < 64 && k_bytes <= 1024;
  const bool short_gemm = isa.short_gemm && (k_bytes < short_gemm_bytes() ||
                                             (narrow_taps && short_gemm_bytes() > 0) ||
                                             n * o.d * o.h * o.w < short_gemm_rows());
  run_gemm(short_gemm ? *isa.short_gemm : isa, x, n, d, h, w, y, nthreads);
}

void ConvOp::run_gemm(const IsaTable& isa, const uint8_t* x, int64_t n, int64_t d, int64_t h,
                      int64_t w, uint8_t* y, int nthreads) {
  const OutDims o = out_dims(d, h, w);
  const bool padded = p_.pd0 || p_.pd1 || p_.ph0 || p_.ph1 || p_.pw0 || p_.pw1;
  // rowtaps_ reads up to 3 bytes past a kernel row (zero weights), so it always copies
  // into the scratch buffer, which has slack at the end
  const bool readable = !p_.x_signed && cg_ % 4 == 0 && !rowtaps_;  // as the GEMM reads it
  // A padded input on a path whose GEMM takes a pointer per row and tap (gemm_indirect):
  // no padded copy; a tap in the padding reads one pixel of za' (indirect below).
  const bool indirect = padded && readable && isa.gemm_indirect && !isa.pack_rows;
  const bool direct = readable && (!padded || indirect);
  const int64_t Dp = direct ? d : d + p_.pd0 + p_.pd1, Hp = direct ? h : h + p_.ph0 + p_.ph1,
                Wp = direct ? w : w + p_.pw0 + p_.pw1;
  const int64_t cx = direct ? p_.cin : int64_t(p_.groups) * cgp_;  // bytes per input pixel
  const uint8_t* xb = x;
  if (!direct) {
    // Padded copy in the uint8 domain: x ^ 0x80 for int8, spatial padding = za', channel
    // padding (cg..cgp) = 0 so that it adds nothing to the row sums.
    xpad_.resize(size_t(n * Dp * Hp * Wp * cx) + 64);
    const uint8_t flip = p_.x_signed ? 0x80 : 0;
    std::vector<uint8_t> padpix(cx, 0);
    for (int g = 0; g < p_.groups; ++g)
      std::memset(padpix.data() + int64_t(g) * cgp_, uint8_t(za_), cg_);
    // one padded row (all Wp pixels) of padded row index r = (b * Dp + id) * Hp + ih
    auto copy_row = [&](int64_t r) {
      const int64_t ih = r % Hp, id = (r / Hp) % Dp, b = r / (Hp * Dp);
      uint8_t* dst = xpad_.data() + r * Wp * cx;
      const int64_t sd = id - p_.pd0, sh = ih - p_.ph0;
      const bool row_in = sd >= 0 && sd < d && sh >= 0 && sh < h;
      for (int64_t iw = 0; iw < Wp; ++iw, dst += cx) {
        const int64_t sw = iw - p_.pw0;
        if (!row_in || sw < 0 || sw >= w) {
          std::memcpy(dst, padpix.data(), cx);
          continue;
        }
        const uint8_t* src = x + (((b * d + sd) * h + sh) * w + sw) * p_.cin;
        if (cgp_ == cg_ && !flip) {
          // the rest of the input row in one copy
          std::memcpy(dst, src, size_t((w - sw) * cx));
          dst += (w - sw - 1) * cx;
          iw += w - sw - 1;
          continue;
        }
        if (cgp_ == cg_) {
          const int64_t len = (w - sw) * cx;
          for (int64_t i = 0; i < len; ++i) dst[i] = src[i] ^ flip;
          dst += (w - sw - 1) * cx;
          iw += w - sw - 1;
          continue;
        }
        for (int g = 0; g < p_.groups; ++g) {
          uint8_t* dg = dst + int64_t(g) * cgp_;
          const uint8_t* sg = src + int64_t(g) * cg_;
          if (flip)
            for (int c = 0; c < cg_; ++c) dg[c] = sg[c] ^ flip;
          else
            std::memcpy(dg, sg, size_t(cg_));  // (K not a multiple of 4: a matrix product's)
          std::memset(dg + cg_, 0, size_t(cgp_ - cg_));
        }
      }
    };
    // memory-bound: split over threads only for copies of a few hundred KB
    const int64_t nrows_pad = n * Dp * Hp;
    const int copiers = int(std::max<int64_t>(1, std::min<int64_t>(
        {int64_t(nthreads), nrows_pad, nrows_pad * Wp * cx / (int64_t(1) << 17)})));
    const int64_t per = (nrows_pad + copiers - 1) / copiers;
    auto copy_part = [&](int t) {
      const int64_t r1 = std::min(nrows_pad, (t + 1) * per);
      for (int64_t r = int64_t(t) * per; r < r1; ++r) copy_row(r);
    };
    if (copiers > 1)
      ThreadPool::instance().run(copiers, copy_part);
    else
      copy_part(0);
    xb = xpad_.data();
  }
  const Panels::Own* own_b = isa.pack_panel ? &panels_->own(isa) : nullptr;
  std::vector<int64_t> toff(gtaps_);
  const int kwt = rowtaps_ ? 1 : p_.kw;  // kernel columns that are separate GEMM taps
  for (int a = 0; a < p_.kd; ++a)
    for (int b = 0; b < p_.kh; ++b)
      for (int c = 0; c < kwt; ++c)
        toff[(a * p_.kh + b) * kwt + c] =
            ((int64_t(a) * p_.dd * Hp + int64_t(b) * p_.dh) * Wp + int64_t(c) * p_.dw) * cx;

  const int64_t rows = n * o.d * o.h * o.w;
  nthreads = threads_for(rows * taps_ * cg_ * int64_t(p_.cout), nthreads);
  // Row chunks of up to 16 microkernel calls; with several threads and few rows, smaller
  // chunks (whole microkernel calls) so that every thread gets a few tasks to balance.
  const int64_t mr_max = std::max(isa.mr, isa.mr_narrow);
  // pack_rows: the chunk's rows of kp bytes (the whole reduction) are copied once for all
  // panels; chunks stay within about 512 KB of copy so that it is read back from L2.
  const int kc4_all = gtaps_ * kc4_;
  const int64_t kp = (int64_t(4) * kc4_all + 63) / 64 * 64;
  int64_t chunk = mr_max * 16;
  if (isa.pack_rows)
    chunk = std::max(mr_max, std::min(chunk, (int64_t(1) << 19) / kp / mr_max * mr_max));
  if (nthreads > 1) {
    const int64_t per_task = (rows + 4 * nthreads - 1) / (4 * nthreads);
    chunk = std::min(chunk, std::max(mr_max, (per_task + mr_max - 1) / mr_max * mr_max));
  }
  const int64_t nchunks = (rows + chunk - 1) / chunk;
  const int64_t base_tasks = int64_t(p_.groups) * nchunks;
  const int npg = base_tasks >= 2 * nthreads ? 1 : std::min<int>(npanels_, nthreads);
  const int64_t ntasks = base_tasks * npg;
  nthreads = int(std::min<int64_t>(nthreads, ntasks));
  std::atomic<int64_t> next{0};
  // gemm_fused_packed: pack_rows writes whole groups of mr_max rows
  const int64_t cap_rows = isa.gemm_fused_packed
                               ? (std::min(chunk, rows) + mr_max - 1) / mr_max * mr_max
                               : std::min(chunk, rows);

  // indirect: row i of a chunk is rp[i], its window's first pixel in x, when the whole
  // window lies inside the input (then its taps are at tap offsets, as for an unpadded
  // input), else null: a GEMM call with such a row takes a pointer per row and tap
  // (window_taps), a tap in the padding reading zpix (cg_ bytes of za', what the padded
  // copy holds there).
  const Inside in_d = inside_outputs(d, o.d, p_.pd0, p_.kd, p_.sd, p_.dd),
               in_h = inside_outputs(h, o.h, p_.ph0, p_.kh, p_.sh, p_.dh),
               in_w = inside_outputs(w, o.w, p_.pw0, p_.kw, p_.sw, p_.dw);
  std::vector<uint8_t> zpix(indirect ? size_t(cg_) : 0, uint8_t(za_));
  // the gtaps_ tap pointers of output row m (group g) at r
  auto window_taps = [&](int g, int64_t m, const uint8_t** r) {
    const uint8_t* const xg = x + int64_t(g) * cg_;
    const OutputPixel px(m, o.d, o.h, o.w);
    const int64_t b = px.b, id0 = px.od * p_.sd - p_.pd0, ih0 = px.oh * p_.sh - p_.ph0,
                  iw0 = px.ow * p_.sw - p_.pw0;
    for (int a = 0, t = 0; a < p_.kd; ++a)
      for (int kb = 0; kb < p_.kh; ++kb)
        for (int kc = 0; kc < p_.kw; ++kc, ++t) {
          const int64_t id = id0 + int64_t(a) * p_.dd, ih = ih0 + int64_t(kb) * p_.dh,
                        iw = iw0 + int64_t(kc) * p_.dw;
          const bool inside = id >= 0 && id < d && ih >= 0 && ih < h && iw >= 0 && iw < w;
          r[t] = inside ? xg + (((b * d + id) * h + ih) * w + iw) * p_.cin : zpix.data();
        }
  };
  // the gtaps_ tap pointers of the border rows of chunk [m0, m1) (rows[i] null) at out (row
  // i at out + i * gtaps_), by window_taps' rule, (b, od, oh, ow) stepped like an odometer;
  // filled[i]: row i's pointers are there (the inside rows' are written when a tile needs
  // them)
  auto chunk_taps = [&](int g, int64_t m0, int64_t m1, const uint8_t* const* rows,
                        const uint8_t** out, uint8_t* filled) {
    const uint8_t* const xg = x + int64_t(g) * cg_;
    OutputPixel px(m0, o.d, o.h, o.w);
    for (int64_t m = m0; m < m1; ++m, out += gtaps_, px.next()) {
      filled[m - m0] = rows[m - m0] == nullptr;
      if (rows[m - m0]) continue;
      const int64_t b = px.b, id0 = px.od * p_.sd - p_.pd0, ih0 = px.oh * p_.sh - p_.ph0,
                    iw0 = px.ow * p_.sw - p_.pw0;
      for (int a = 0, t = 0; a < p_.kd; ++a) {
        const int64_t id = id0 + int64_t(a) * p_.dd;
        for (int kb = 0; kb < p_.kh; ++kb) {
          const int64_t ih = ih0 + int64_t(kb) * p_.dh;
          const bool row_in = id >= 0 && id < d && ih >= 0 && ih < h;
          const uint8_t* const xr = row_in ? xg + ((b * d + id) * h + ih) * w * p_.cin : nullptr;
          for (int kc = 0; kc < p_.kw; ++kc, ++t) {
            const int64_t iw = iw0 + int64_t(kc) * p_.dw;
            out[t] = row_in && iw >= 0 && iw < w ? xr + iw * p_.cin : zpix.data();
          }
        }
      }
    }
  };
  // the rows of chunk [m0, m1) and (need_rowsum_) their sums
  auto indirect_rows = [&](int g, int64_t m0, int64_t m1, const uint8_t** rows, int32_t* sums,
                           const uint8_t** taps) {
    const uint8_t* const xg = x + int64_t(g) * cg_;
    const int nt = gtaps_;
    OutputPixel px(m0, o.d, o.h, o.w);
    for (int64_t m = m0; m < m1; ++m, px.next()) {
      const int64_t b = px.b, od = px.od, oh = px.oh, ow = px.ow;
      const bool inside = in_d.has(od) && in_h.has(oh) && in_w.has(ow);
      rows[m - m0] = inside ? xg + (((b * d + od * p_.sd - p_.pd0) * h + oh * p_.sh - p_.ph0) *
                                        w + ow * p_.sw - p_.pw0) * p_.cin
                            : nullptr;
      if (need_rowsum_) {
        if (inside)
          for (int t = 0; t < nt; ++t) taps[t] = rows[m - m0] + toff[t];
        else
          window_taps(g, m, taps);
        uint32_t sum = 0;
        for (int t = 0; t < nt; ++t)
          for (int c = 0; c < cg_; ++c) sum += taps[t][c];
        sums[m - m0] = int32_t(sum);
      }
    }
  };

  auto work = [&](int) {
    std::vector<const uint8_t*> rp(chunk);
    // indirect: the chunk's pointers per row and tap when a row of it is not inside, built
    // once per task and read by every tile with such a row, in every panel (chunk_taps)
    std::vector<const uint8_t*> taps(indirect ? size_t(chunk * gtaps_) : 0);
    std::vector<uint8_t> filled(indirect ? size_t(chunk) : 0);
    std::vector<int32_t> rs(chunk, 0);
    alignas(64) int32_t tile[kMaxMr * kPanel];
    std::vector<const uint8_t*> pp;  // pack_rows: the packed rows
    const int64_t zero_off = 0;
    // Dynamic scheduling: each task (all outputs of one row chunk x panel range) is done by
    // one thread with the full reduction, whichever thread takes it.
    for (int64_t task; (task = next.fetch_add(1, std::memory_order_relaxed)) < ntasks;) {
      const int pg = int(task % npg);
      const int64_t gc = task / npg;
      const int g = int(gc / nchunks);
      const int64_t m0 = (gc % nchunks) * chunk, m1 = std::min(rows, m0 + chunk);
      OutputPixel px(m0, o.d, o.h, o.w);
      const uint8_t* const xg = xb + int64_t(g) * (direct ? cg_ : cgp_);
      const int64_t sd = p_.sd, sh = p_.sh;
      const int64_t step_w = int64_t(p_.sw) * cx, hp = Hp, dp = Dp, row_bytes = Wp * cx;
      const bool rsum = need_rowsum_;
      const int nt = gtaps_, tk = tapk_;
      const int64_t* const to = toff.data();
      const uint8_t** const rpp = rp.data();
      int32_t* const rsp = rs.data();
      bool border = false;  // indirect: a row of the chunk is not inside (taps holds them all)
      if (indirect) {
        indirect_rows(g, m0, m1, rpp, rsp, taps.data());
        border = std::find(rpp, rpp + (m1 - m0), nullptr) != rpp + (m1 - m0);
        if (border) chunk_taps(g, m0, m1, rpp, taps.data(), filled.data());
      }
      const uint8_t* rb =
          indirect ? nullptr
                   : xg + ((px.b * dp + px.od * sd) * hp + px.oh * sh) * row_bytes +
                         px.ow * step_w;
      for (int64_t m = m0; m < m1 && !indirect; ++m) {
        rpp[m - m0] = rb;
        if (rsum) {
          uint32_t s = 0;
          for (int t = 0; t < nt; ++t) {
            const uint8_t* q = rb + to[t];
            for (int c = 0; c < tk; ++c) s += q[c];
          }
          rsp[m - m0] = int32_t(s);
        }
        rb += step_w;
        if (px.next()) rb = xg + ((px.b * dp + px.od * sd) * hp + px.oh * sh) * row_bytes;
      }
      const int p0 = npanels_ * pg / npg, p1 = npanels_ * (pg + 1) / npg;
      if (isa.gemm_prepare) isa.gemm_prepare();
      // The GEMM's view of the rows: as they are, or packed (one tap of kc4_all groups) when
      // several panels share them or the taps would split the kernel's 64-byte K blocks.
      const uint8_t* const* ga = rp.data();
      const int64_t* gto = toff.data();
      int gnt = gtaps_, gkc4 = kc4_;
      bool own_rows = false;  // rows in the path's own layout (gemm_fused_packed)
      if (isa.pack_rows && (p1 - p0 > 1 || (gtaps_ > 1 && kc4_ % 16 != 0))) {
        // this thread's buffer, kept for later runs (pack_rows writes every byte it reads)
        static thread_local std::vector<uint8_t> packed;
        const int64_t cap = cap_rows;
        if (int64_t(packed.size()) < cap * kp + 64) packed.resize(size_t(cap * kp) + 64);
        pp.resize(size_t(cap));
        uint8_t* const base = packed.data() + align64_offset(packed.data());
        isa.pack_rows(m1 - m0, rpp, to, nt, kc4_, kp, base);
        for (int64_t i = 0; i < m1 - m0; ++i) pp[i] = base + i * kp;
        ga = pp.data();
        gto = &zero_off;
        gnt = 1;
        gkc4 = kc4_all;
        own_rows = isa.gemm_fused_packed != nullptr;
      }
      for (int pn = p0; pn < p1; ++pn) {
        const int nvalid = std::min(kPanel, mg_ - pn * kPanel);
        const int wp = (nvalid + 15) / 16 * 16;
        const int8_t* panel = own_b ? own_b->panel(g * npanels_ + pn)
                                    : panels_->panel(g * npanels_ + pn);
        const int c0 = g * mg_ + pn * kPanel;
        const int mr = wp <= 32 ? isa.mr_narrow : isa.mr;
        for (int64_t m = m0; m < m1; m += mr) {
          const int rr = int(std::min<int64_t>(mr, m1 - m));
          const uint8_t* const* ca = ga + (m - m0);
          const int64_t* cto = gto;
          if (border && std::find(ca, ca + rr, nullptr) != ca + rr) {
            for (int64_t i = m - m0; i < m - m0 + rr; ++i)
              if (!filled[i]) {
                const uint8_t** r = taps.data() + i * gtaps_;
                for (int t = 0; t < gtaps_; ++t) r[t] = rp[i] + toff[t];
                filled[i] = 1;
              }
            ca = taps.data() + (m - m0) * gtaps_;
            cto = nullptr;  // (IsaTable::gemm_indirect)
          }
          if (isa.gemm_fused) {
            GemmOut fo;
            fo.e = &epi_;
            fo.c0 = c0;
            fo.nvalid = nvalid;
            fo.rowsum = rs.data() + (m - m0);
            fo.out = y + m * p_.cout + c0;
            fo.ldo = p_.cout;
            (own_rows ? isa.gemm_fused_packed : isa.gemm_fused)(rr, wp, ca, cto, gnt, gkc4,
                                                                panel, fo);
            continue;
          }
          isa.gemm(rr, wp, ca, cto, gnt, gkc4, panel, tile);
          for (int i = 0; i < rr; ++i)
            isa.epilogue(tile + i * kPanel, nvalid, epi_, c0, rs[m - m0 + i],
                         y + (m + i) * p_.cout + c0);
        }
      }
    }
  };
  ThreadPool::instance().run(nthreads, work);
}

void ConvOp::run_depthwise(const IsaTable& isa, const uint8_t* x, int64_t n, int64_t d,
                           int64_t h, int64_t w, uint8_t* y, int nthreads) {
  if (dwq_ && isa.dw_quad) return run_depthwise_quads(isa, x, n, d, h, w, y, nthreads);
  const OutDims o = out_dims(d, h, w);
  if (by_width_ && w == 1) {
    // one task per output row either way: exchanged, the rows are (image, depth) pairs;
    // taken unless that leaves threads idle that the rows here would use
    const int64_t macs = n * o.d * o.h * int64_t(p_.cin) * p_.kd * p_.kh;
    const int64_t wanted = threads_for(macs, nthreads);
    if (std::min<int64_t>(wanted, n * o.d) >= std::min<int64_t>(wanted, n * o.d * o.h))
      return by_width_->run_depthwise(isa, x, n, d, 1, h, y, nthreads);
  }
  const int C = p_.cin, cp = (C + 15) / 16 * 16;
  const int64_t Hp = h + p_.ph0 + p_.ph1, Wp = w + p_.pw0 + p_.pw1, Dp = d + p_.pd0 + p_.pd1;
  // Only positions ow * sw + 2 j dw of a pair row are read: keep every g-th one.
  const int g = std::gcd(p_.sw, 2 * p_.dw);
  const int64_t row_elems = (Wp + g - 1) / g * cp;
  const int slots_h = p_.kh * p_.dh, slots_d = p_.kd * p_.dd, nslots = slots_h * slots_d;
  const int nrows = p_.kd * p_.kh, npairs = (p_.kw + 1) / 2;
  const int64_t ntasks = n * o.d * o.h;
  nthreads = threads_for(ntasks * o.w * C * p_.kd * p_.kh * p_.kw, nthreads);
  nthreads = int(std::min<int64_t>(nthreads, ntasks));
  if (int(dw_cache_.size()) < nthreads) dw_cache_.resize(nthreads);
  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(16, ntasks / (4 * nthreads)));
  const int64_t nblocks = (ntasks + block - 1) / block;
  std::atomic<int64_t> next{0};
  const bool sgn = p_.x_signed;
  const int32_t zp = p_.x_zp;

  auto work = [&](int tid) {
    std::vector<int32_t>& cache = dw_cache_[tid];
    // 64-byte aligned rows (row_elems is a multiple of 16): no cache-line-split loads
    cache.resize(size_t(nslots * row_elems) + 16);
    int32_t* const cache0 = cache.data() + align64_offset(cache.data());
    std::vector<int64_t> tags(nslots, -1);
    std::vector<const int32_t*> rows(nrows);
    // Pair row: P[iw][c] = (x[iw] - zp, x[iw + dw] - zp) as int16 pairs, 0 outside.
    auto build = [&](int32_t* dst, int64_t b, int64_t id, int64_t ih) {
      const int64_t sd = id - p_.pd0, sh = ih - p_.ph0;
      if (sd < 0 || sd >= d || sh < 0 || sh >= h) {
        std::memset(dst, 0, size_t(row_elems) * 4);  // padding row: x - zp = 0
        return;
      }
      DwRowArgs ra;
      ra.src = x + ((b * d + sd) * h + sh) * w * C;
      ra.w = w;
      ra.wp = Wp;
      ra.c = C;
      ra.cp = cp;
      ra.pw0 = p_.pw0;
      ra.dil = p_.dw;
      ra.step = g;
      ra.x_signed = sgn;
      ra.zp = zp;
      isa.dw_row(dst, ra);
    };
    // Dynamic scheduling over blocks of consecutive output rows (so the row cache still sees
    // neighbouring rows); every output row is computed by exactly one thread.
    for (int64_t blk; (blk = next.fetch_add(1, std::memory_order_relaxed)) < nblocks;) {
     const int64_t task_end = std::min(ntasks, (blk + 1) * block);
     for (int64_t task = blk * block; task < task_end; ++task) {
      const int64_t b = task / (o.d * o.h), r = task % (o.d * o.h), od = r / o.h, oh = r % o.h;
      for (int a = 0; a < p_.kd; ++a)
        for (int k = 0; k < p_.kh; ++k) {
          const int64_t id = od * p_.sd + int64_t(a) * p_.dd, ih = oh * p_.sh + int64_t(k) * p_.dh;
          const int slot = int(ih % slots_h) + slots_h * int(id % slots_d);
          const int64_t tag = (b * Dp + id) * Hp + ih;
          int32_t* dst = cache0 + slot * row_elems;
          if (tags[slot] != tag) {
            build(dst, b, id, ih);
            tags[slot] = tag;
          }
          rows[a * p_.kh + k] = dst;
        }
      DwArgs args;
      args.rows = rows.data();
      args.nrows = nrows;
      args.npairs = npairs;
      args.pair_step = int64_t(2 * p_.dw / g) * cp;
      args.ow_step = int64_t(p_.sw / g) * cp;
      args.ow = int(o.w);
      args.cp = cp;
      args.c = C;
      args.w = dw_w_.data();
      args.out = y + ((b * o.d + od) * o.h + oh) * o.w * C;
      isa.dw(args, dw_epi_);
     }
    }
  };
  ThreadPool::instance().run(nthreads, work);
}

// 3x3 depthwise on uint8 quads (DwQuadArgs): no per-row preparation; each task reads the
// input rows directly. With unit height stride and dilation a task computes two output rows
// from four input rows, which share every quad; otherwise one row from three.
void ConvOp::run_depthwise_quads(const IsaTable& isa, const uint8_t* x, int64_t n, int64_t d,
                                 int64_t h, int64_t w, uint8_t* y, int nthreads) {
  const OutDims o = out_dims(d, h, w);
  const int C = p_.cin;
  // padding rows read zero-point bytes (raw input domain: the kernel flips int8 like x)
  if (int64_t(dwq_pad_.size()) < w * C + 64 || dwq_pad_[0] != uint8_t(p_.x_zp))
    dwq_pad_.assign(size_t(w * C + 64), uint8_t(p_.x_zp));
  const bool pairs = p_.sh == 1 && p_.dh == 1;
  const int64_t groups = pairs ? (o.h + 1) / 2 : o.h;  // output-row groups per plane
  const int64_t rows = n * o.d * groups;
  const int64_t macs = n * o.d * o.h * o.w * C * 9;
  // The quad kernel runs a few times fewer MACs per second than the GEMM and its tasks are
  // cheap to hand out: a second thread already pays off from an eighth of the GEMM's work
  // per thread (measured on MobileNetV2's 14x14 and 7x7 layers).
  nthreads = int(std::max<int64_t>(1, std::min<int64_t>(nthreads, 8 * macs / kMinMacsPerThread)));
  // With several threads and few row groups (small late layers), tasks also split the
  // channels, in chunks of whole 64-channel blocks, so that every thread gets a few tasks.
  const int64_t nblk = (C + 63) / 64;
  int64_t nchunks = 1;
  if (nthreads > 1 && rows < 8 * nthreads)
    nchunks = std::min<int64_t>(nblk, (8 * nthreads + rows - 1) / rows);
  const int64_t chunk = (nblk + nchunks - 1) / nchunks * 64;  // channels per chunk
  nchunks = (C + chunk - 1) / chunk;
  const int64_t ntasks = rows * nchunks;
  nthreads = int(std::min<int64_t>(nthreads, ntasks));
  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(8, ntasks / (4 * nthreads)));
  const int64_t nblocks = (ntasks + block - 1) / block;
  std::atomic<int64_t> next{0};
  const uint8_t* const pad = dwq_pad_.data();

  auto work = [&](int) {
    DwQuadArgs a;
    a.w = w;
    a.c = C;
    a.ow = int(o.w);
    a.sw = p_.sw;
    a.pw0 = p_.pw0;
    a.x_signed = p_.x_signed;
    a.za = uint8_t(za_);
    a.w8 = dwq_w_.data() + dwq0_;
    for (int64_t blk; (blk = next.fetch_add(1, std::memory_order_relaxed)) < nblocks;) {
      const int64_t end = std::min(ntasks, (blk + 1) * block);
      for (int64_t task = blk * block; task < end; ++task) {
        // consecutive tasks: neighbouring row groups of one channel chunk
        const int64_t ch = task / rows, row = task % rows;
        a.c0 = int(ch * chunk);
        a.c1 = int(std::min<int64_t>(C, (ch + 1) * chunk));
        const int64_t plane = row / groups, grp = row % groups;  // plane = b * o.d + od
        const int64_t b = plane / o.d, od = plane % o.d;
        const int64_t oh = pairs ? 2 * grp : grp;
        a.nout = pairs && oh + 1 < o.h ? 2 : 1;
        const int64_t id = od * p_.sd - p_.pd0;
        const bool plane_in = id >= 0 && id < d;
        for (int r = 0; r < 4; ++r) {
          // rows of a pair are consecutive; a single row uses r * dh (row 3 has weight 0)
          const int64_t ih = oh * p_.sh - p_.ph0 + (a.nout == 2 ? r : std::min(r, 2) * p_.dh);
          a.rows[r] = plane_in && ih >= 0 && ih < h ? x + ((b * d + id) * h + ih) * w * C : pad;
        }
        a.out[0] = y + ((plane * o.h) + oh) * o.w * C;
        a.out[1] = a.out[0] + o.w * C;
        isa.dw_quad(a, dwq_epi_);
      }
    }
  };
  ThreadPool::instance().run(nthreads, work);
}

void add_portable(const AddArgs& a) {
  // Round to nearest even by the 1.5 * 2^23 trick: exact for |s| <= 2^22, which the
  // 8-bit clamp bounds guarantee. std::fma rounds once, as the vector kernels' fma does.
  const float lo = float(a.qmin), hi = float(a.qmax), magic = 12582912.0f;
  for (int64_t i = 0; i < a.n; ++i) {
    const float va = a.a_signed ? float(int8_t(a.a[i])) : float(a.a[i]);
    const float vb = a.b_signed ? float(int8_t(a.b[i])) : float(a.b[i]);
    float s = std::fma(va, a.ma, std::fma(vb, a.mb, a.c));
    s = s < lo ? lo : s;
    s = s > hi ? hi : s;
    const float r = (s + magic) - magic;  // no reassociation without -ffast-math
    a.y[i] = uint8_t(int32_t(r));
  }
}

void run_add(const AddArgs& a, int threads) {
  const IsaTable& isa = *active_table();
  const AddFn fn = isa.add ? isa.add : add_portable;
  run_elementwise(a.n, int64_t(1) << 18, threads, [&](int64_t i0, int64_t n) {
    AddArgs part = a;
    part.a += i0;
    part.b += i0;
    part.y += i0;
    part.n = n;
    fn(part);
  });
}

namespace {

template <typename T>
void maxpool_portable_t(const PoolArgs& a, int64_t r0, int64_t r1) {
  const T* x = reinterpret_cast<const T*>(a.x);
  T* y = reinterpret_cast<T*>(a.y);
  const T lowest = std::numeric_limits<T>::min();
  const int64_t C = a.c;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / a.oh, oh = r % a.oh;
    T* out = y + r * a.ow * C;
    for (int64_t ow = 0; ow < a.ow; ++ow, out += C) {
      for (int64_t c = 0; c < C; ++c) out[c] = lowest;
      for (int i = 0; i < a.kh; ++i) {
        const int64_t ih = oh * a.sh - a.ph + int64_t(i) * a.dh;
        if (ih < 0 || ih >= a.h) continue;
        const T* row = x + (b * a.h + ih) * a.w * C;
        for (int j = 0; j < a.kw; ++j) {
          const int64_t iw = ow * a.sw - a.pw + int64_t(j) * a.dw;
          if (iw < 0 || iw >= a.w) continue;
          const T* px = row + iw * C;
          for (int64_t c = 0; c < C; ++c) out[c] = px[c] > out[c] ? px[c] : out[c];
        }
      }
    }
  }
}

}  // namespace

void maxpool_portable(const PoolArgs& a, int64_t r0, int64_t r1) {
  if (a.is_signed)
    maxpool_portable_t<int8_t>(a, r0, r1);
  else
    maxpool_portable_t<uint8_t>(a, r0, r1);
}

void run_maxpool(const PoolArgs& a, int threads) {
  const IsaTable& isa = *active_table();
  const PoolFn fn = isa.maxpool ? isa.maxpool : maxpool_portable;
  const int64_t rows = a.n * a.oh;
  if (rows <= 0 || a.ow <= 0 || a.c <= 0) return;
  if (threads <= 0) threads = ThreadPool::max_threads();
  // memory-bound: split only when every thread gets a sizeable share of the output
  const int64_t bytes = rows * a.ow * a.c;
  threads = int(std::max<int64_t>(1, std::min<int64_t>({int64_t(threads), bytes >> 17, rows})));
  if (threads <= 1) {
    fn(a, 0, rows);
    return;
  }
  const int64_t per = (rows + threads - 1) / threads;
  ThreadPool::instance().run(threads, [&](int t) {
    const int64_t r0 = std::min<int64_t>(rows, per * t), r1 = std::min<int64_t>(rows, r0 + per);
    if (r0 < r1) fn(a, r0, r1);
  });
}

// One value's clamped quotient (or product by the reciprocal, common.h quant_reciprocal_ok).
inline float quant_clamped(float v, float lo, float hi) {
  v = v == v ? v : lo;  // NaN fails both comparisons below: it becomes qmin (MLAS's maxps)
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

void quantize_portable(const QuantArgs& a) {
  // Clamping before rounding is equivalent (integer bounds) and keeps |v| <= 2^22, where the
  // 1.5 * 2^23 trick rounds to nearest even exactly. Blocks of 16 as products by the
  // reciprocal, a block with a value near a half-integer by the division (common.h).
  const float lo = float(a.qmin - a.zp), hi = float(a.qmax - a.zp), magic = 12582912.0f;
  const bool reciprocal = quant_reciprocal_ok(a.scale);
  const float r = 1.0f / a.scale;
  constexpr int64_t kBlock = 16;
  float q[kBlock];
  for (int64_t i0 = 0; i0 < a.n; i0 += kBlock) {
    const int64_t len = std::min(kBlock, a.n - i0);
    const float* x = a.x + i0;
    bool divide = !reciprocal;
    if (reciprocal) {
      int near = 0;
      for (int64_t j = 0; j < len; ++j) {
        q[j] = quant_clamped(x[j] * r, lo, hi);
        near |= std::fabs(q[j] - ((q[j] + magic) - magic)) >= kQuantNearTie;
      }
      divide = near != 0;
    }
    if (divide)
      for (int64_t j = 0; j < len; ++j) q[j] = quant_clamped(x[j] / a.scale, lo, hi);
    for (int64_t j = 0; j < len; ++j)
      a.y[i0 + j] = uint8_t(int32_t((q[j] + magic) - magic) + a.zp);
  }
}

void run_quantize(const QuantArgs& a, int threads) {
  const IsaTable& isa = *active_table();
  const QuantFn fn = isa.quantize ? isa.quantize : quantize_portable;
  run_elementwise(a.n, int64_t(1) << 17, threads, [&](int64_t i0, int64_t n) {
    QuantArgs part = a;
    part.x += i0;
    part.y += i0;
    part.n = n;
    fn(part);
  });
}

}  // namespace lowp
