// Driver layer: MatMulInteger with a prepacked constant B (IntMatMul) and
// DynamicQuantizeLinear (run_dynamic_quantize); see int_matmul.h and docs/native.md (N1).
#include "int_matmul.h"
#include "float_reduce.h"

#include <emmintrin.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <limits>
#include <stdexcept>
#include <string>

#include "dispatch.h"
#include "threadpool.h"

namespace lowp {

namespace {
constexpr int64_t kMinMacsPerThread = int64_t(1) << 19;  // as driver.cpp
int64_t round_up64(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
}  // namespace

// (N1) without a bias and with za known only at run time: with b8 = b - delta (delta = 128
// for uint8 b), zb' = zb - delta, a_u = a + 128 * [a signed] (the uint8 domain the kernels
// read), za' = za + 128 * [a signed]:
//   sum (a - za)(b - zb) = sum a_u b8 - zb' rowsum(a_u) + za' (K zb' - colsum(b8))
// term by term modulo 2^32, so the int32 result wraps exactly as ONNX Runtime's.
IntMatMul::IntMatMul(const uint8_t* b, int64_t k, int64_t n, bool b_signed, const int32_t* b_zp)
    : k_(k), n_(n) {
  if (k < 0 || n < 0 || k > (int64_t(1) << 28)) throw std::invalid_argument("bad matrix sizes");
  kc4_ = int((k + 3) / 4);
  npanels_ = int((n + kPanel - 1) / kPanel);
  const int delta = b_signed ? 0 : 128;
  colsum_.assign(size_t(round_up64(n, kPanel)), 0);
  zb_.assign(size_t(round_up64(n, kPanel)), 0);
  for (int64_t c = 0; c < n; ++c) {
    uint32_t s = 0;
    for (int64_t p = 0; p < k; ++p) {
      const uint8_t v = b[p * n + c];
      s += uint32_t((b_signed ? int32_t(int8_t(v)) : int32_t(v)) - delta);
    }
    colsum_[size_t(c)] = int32_t(s);
    zb_[size_t(c)] = b_zp[c] - delta;
    if (zb_[size_t(c)] != 0) need_rowsum_ = true;
  }
  // the convolution's shared panel layout (pack.cpp): [k4][wp][4] int8 per 64 columns
  auto pk = std::make_shared<Panels>();
  pk->groups = 1;
  pk->npanels = npanels_;
  pk->mg = int(n);
  pk->k4 = kc4_;
  pk->off.resize(size_t(npanels_));
  int64_t total = 0;
  for (int pn = 0; pn < npanels_; ++pn) {
    pk->off[size_t(pn)] = total;
    const int64_t wp = round_up64(std::min<int64_t>(kPanel, n - int64_t(pn) * kPanel), 16);
    total += int64_t(kc4_) * 4 * wp;
  }
  pk->data.assign(size_t(total + 64), 0);
  pk->off0 = align64_offset(pk->data.data());
  pk->bytes = total;
  for (int pn = 0; pn < npanels_; ++pn) {
    const int64_t nvalid = std::min<int64_t>(kPanel, n - int64_t(pn) * kPanel);
    const int64_t wp = round_up64(nvalid, 16);
    int8_t* dst = pk->data.data() + pk->off0 + pk->off[size_t(pn)];
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < nvalid; ++j) {
        const uint8_t v = b[p * n + int64_t(pn) * kPanel + j];
        dst[((p / 4) * wp + j) * 4 + p % 4] =
            int8_t((b_signed ? int32_t(int8_t(v)) : int32_t(v)) - delta);
      }
  }
  panels_ = std::move(pk);
}

void IntMatMul::run(const uint8_t* a, int64_t m, bool a_signed, int32_t a_zp, int32_t* y,
                    float* yf, const float* a_scale, const float* b_scale,
                    bool b_scale_per_column, const float* bias, int threads) const {
  if (m <= 0 || n_ == 0) return;
  if (k_ == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t c = 0; c < n_; ++c) {
        const float mult = a_scale != nullptr ? a_scale[0] * b_scale[b_scale_per_column ? c : 0]
                                              : 0.0f;
        if (yf != nullptr)
          yf[i * n_ + c] = bias != nullptr ? 0.0f * mult + bias[c] : 0.0f * mult;
        else
          y[i * n_ + c] = 0;
      }
    return;
  }
  const uint32_t za = uint32_t(a_zp + (a_signed ? 128 : 0));
  // A in the uint8 domain, rows of kp bytes (zeros past k: the panels hold zeros there)
  const int64_t kp = round_up64(4 * int64_t(kc4_), 64);
  if (!a_signed && kp == k_) {
    // uint8 rows of whole 64-byte blocks (DynamicQuantizeLinear's output of a model's hidden
    // size): the kernels read them where they are (unaligned loads, nothing past k), no copy;
    // the row sums only when some zb' is not 0 (the epilogue reads them only then)
    std::vector<int32_t> rowsum(static_cast<size_t>(m), 0);
    if (need_rowsum_)
      for (int64_t i = 0; i < m; ++i) {
        const uint8_t* src = a + i * k_;
        uint32_t s = 0;
        for (int64_t p = 0; p < k_; ++p) s += src[p];
        rowsum[size_t(i)] = int32_t(s);
      }
    product(a, kp, rowsum.data(), m, &za, 0, y, yf, a_scale, 0, b_scale, b_scale_per_column,
            bias, threads);
    return;
  }
  std::vector<uint8_t> buf(size_t(m * kp + 64));
  uint8_t* const ap = buf.data() + align64_offset(buf.data());
  std::vector<int32_t> rowsum(static_cast<size_t>(m), 0);
  const uint8_t flip = a_signed ? 0x80 : 0;
  for (int64_t i = 0; i < m; ++i) {
    const uint8_t* src = a + i * k_;
    uint8_t* dst = ap + i * kp;
    uint32_t s = 0;
    for (int64_t p = 0; p < k_; ++p) {
      dst[p] = uint8_t(src[p] ^ flip);
      s += dst[p];
    }
    std::memset(dst + k_, 0, size_t(kp - k_));
    rowsum[size_t(i)] = int32_t(s);
  }
  product(ap, kp, rowsum.data(), m, &za, 0, y, yf, a_scale, 0, b_scale, b_scale_per_column,
          bias, threads);
}

namespace {
// The sum of n bytes (n a multiple of 16), SSE2's sums of absolute differences from zero.
uint32_t byte_sum(const uint8_t* p, int64_t n) {
  __m128i acc = _mm_setzero_si128();
  const __m128i zero = _mm_setzero_si128();
  for (int64_t i = 0; i < n; i += 16)
    acc = _mm_add_epi64(acc, _mm_sad_epu8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)),
                                          zero));
  return uint32_t(_mm_cvtsi128_si64(acc) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(acc, acc)));
}
}  // namespace

void IntMatMul::run_conv(const uint8_t* x, const ConvRowsGeometry& g, bool a_signed,
                        int32_t a_zp, const int32_t* bias, bool bias_per_channel, int32_t* y,
                        float* yf, const float* scale, int threads) const {
  if (int64_t(g.c) * g.kh * g.kw != k_)
    throw std::invalid_argument("run_conv: k is not c * kh * kw");
  const int64_t plane = int64_t(g.oh) * g.ow, m = int64_t(g.n) * plane;
  if (m <= 0 || n_ == 0) return;
  // channel c's value from its int32 sum: + bias (wrapping), then int32 or float32 out
  const bool scaled = scale != nullptr;
  const float s = scaled ? scale[0] : 1.0f;
  auto put = [bias, bias_per_channel, y, yf, scaled, s](int64_t c, int64_t at, int32_t acc) {
    if (bias != nullptr) acc = int32_t(uint32_t(acc) + uint32_t(bias[bias_per_channel ? c : 0]));
    if (yf == nullptr)
      y[at] = acc;
    else if (scaled)
      yf[at] = float(acc) * s;
    else
      yf[at] = float(acc);
  };
  if (k_ == 0) {
    for (int64_t b = 0; b < g.n; ++b)
      for (int64_t c = 0; c < n_; ++c)
        for (int64_t p = 0; p < plane; ++p) put(c, (b * n_ + c) * plane + p, 0);
    return;
  }
  if (threads < 1) threads = ThreadPool::max_threads();
  const uint32_t za = uint32_t(a_zp + (a_signed ? 128 : 0));
  const int64_t kp = round_up64(4 * int64_t(kc4_), 64);
  // rows in the uint8 domain (zeros past k), left uninitialised until gathered
  std::unique_ptr<uint8_t[]> buf(new uint8_t[size_t(m * kp + 64)]);
  uint8_t* const ap = buf.get() + align64_offset(buf.get());
  std::vector<int32_t> rowsum(static_cast<size_t>(need_rowsum_ ? m : 0), 0);
  const uint8_t flip = a_signed ? 0x80 : 0, z = uint8_t(uint8_t(a_zp) ^ flip);
  // the input channels-last, in the uint8 domain: pixel (b, iy, ix) at c bytes
  const int64_t c = g.c, hw = int64_t(g.h) * g.w;
  std::unique_ptr<uint8_t[]> hwc(new uint8_t[size_t(int64_t(g.n) * hw * c + 1)]);
  for (int64_t b = 0; b < g.n; ++b) {
    const uint8_t* src = x + b * c * hw;
    uint8_t* dst = hwc.get() + b * c * hw;
    constexpr int64_t kPixels = 64;
    for (int64_t p0 = 0; p0 < hw; p0 += kPixels) {
      const int64_t p1 = std::min(hw, p0 + kPixels);
      for (int64_t ci = 0; ci < c; ++ci)
        for (int64_t p = p0; p < p1; ++p) dst[p * c + ci] = uint8_t(src[ci * hw + p] ^ flip);
    }
  }
  // gather: tasks of whole output lines
  const int64_t lines = int64_t(g.n) * g.oh;
  auto gather = [&](int64_t l0, int64_t l1) {
    for (int64_t l = l0; l < l1; ++l) {
      const int b = int(l / g.oh), oy = int(l % g.oh);
      const uint8_t* image = hwc.get() + b * c * hw;
      for (int ox = 0; ox < g.ow; ++ox) {
        const int64_t i = l * g.ow + ox;
        uint8_t* const row = ap + i * kp;
        uint8_t* dst = row;
        const int y0 = oy * g.sh - g.pt, x0 = ox * g.sw - g.pl;
        for (int ky = 0; ky < g.kh; ++ky) {
          const int iy = y0 + ky * g.dh;
          for (int kx = 0; kx < g.kw; ++kx) {
            const int ix = x0 + kx * g.dw;
            if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w)
              std::memset(dst, z, size_t(c));
            else
              std::memcpy(dst, image + (int64_t(iy) * g.w + ix) * c, size_t(c));
            dst += c;
          }
        }
        std::memset(dst, 0, size_t(kp - k_));
        if (need_rowsum_) rowsum[size_t(i)] = int32_t(byte_sum(row, kp));
      }
    }
  };
  const int gather_threads =
      int(std::max<int64_t>(1, std::min<int64_t>({threads, lines, m * k_ / (int64_t(1) << 16)})));
  // (one thread: ThreadPool::run calls the task here)
  ThreadPool::instance().run(gather_threads, [&](int t) {
    gather(lines * t / gather_threads, lines * (t + 1) / gather_threads);
  });
  // the product as (n oh ow) x m rows, then each image's rows transposed into (m, oh ow)
  std::unique_ptr<int32_t[]> rows_out(new int32_t[size_t(m * n_)]);
  product(ap, kp, need_rowsum_ ? rowsum.data() : nullptr, m, &za, 0, rows_out.get(), nullptr,
          nullptr, 0, nullptr, false, nullptr, threads);
  constexpr int64_t kBlock = 32;
  const int64_t pblocks = (plane + kBlock - 1) / kBlock, tasks = int64_t(g.n) * pblocks;
  auto transpose = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / pblocks, p0 = (t % pblocks) * kBlock;
      const int64_t p1 = std::min(plane, p0 + kBlock);
      const int32_t* src = rows_out.get() + (b * plane) * n_;
      const int64_t base = b * n_ * plane;
      for (int64_t c0 = 0; c0 < n_; c0 += kBlock) {
        const int64_t c1 = std::min(n_, c0 + kBlock);
        if (bias == nullptr && yf == nullptr) {
          for (int64_t c = c0; c < c1; ++c)
            for (int64_t p = p0; p < p1; ++p) y[base + c * plane + p] = src[p * n_ + c];
        } else {
          for (int64_t c = c0; c < c1; ++c)
            for (int64_t p = p0; p < p1; ++p) put(c, base + c * plane + p, src[p * n_ + c]);
        }
      }
    }
  };
  const int transpose_threads =
      int(std::max<int64_t>(1, std::min<int64_t>({threads, tasks, m * n_ / (int64_t(1) << 15)})));
  ThreadPool::instance().run(transpose_threads, [&](int t) {
    transpose(tasks * t / transpose_threads, tasks * (t + 1) / transpose_threads);
  });
}

namespace {

// The int32 epilogue of a tile of rr rows (rows i0.., columns c0.., nvalid of them): (N1)
// sum a_u b8 - zb' rowsum(a_u) + za' (K zb' - colsum), modulo 2^32; then either the int32
// result, or float32(acc) * float32(a_scale * b_scale) and + bias, each rounded once.
// Element by element: the same values at any vector width.
struct EpilogueArgs {
  const int32_t* kz;
  const uint32_t* za;
  int64_t za_step;
  const int32_t* rowsum;
  const int32_t* zb;
  bool need_rowsum;
  int32_t* y;
  float* yf;
  const float* a_scale;
  int64_t scale_step;
  const float* bs;
  const float* bias;
  int64_t n;
};

__attribute__((always_inline)) inline void epilogue_body(int32_t* tile, int rr, int64_t i0,
                                                         int c0, int nvalid,
                                                         const EpilogueArgs& e) {
  for (int i = 0; i < rr; ++i) {
    const int64_t row = i0 + i;
    int32_t* t = tile + i * kPanel;
    const int32_t* kc = e.kz + c0;
    const uint32_t zr = e.za[row * e.za_step];
    if (e.need_rowsum) {
      const uint32_t rs = uint32_t(e.rowsum[row]);
      const int32_t* zc = e.zb + c0;
      for (int j = 0; j < nvalid; ++j)
        t[j] = int32_t(uint32_t(t[j]) + zr * uint32_t(kc[j]) - uint32_t(zc[j]) * rs);
    } else {
      for (int j = 0; j < nvalid; ++j) t[j] = int32_t(uint32_t(t[j]) + zr * uint32_t(kc[j]));
    }
    if (e.yf != nullptr) {
      float* out = e.yf + row * e.n + c0;
      const float sa = e.a_scale[row * e.scale_step];
      const float* bc = e.bs + c0;
      if (e.bias != nullptr) {
        const float* fb = e.bias + c0;
        for (int j = 0; j < nvalid; ++j) {
          const float mult = sa * bc[j];
          out[j] = float(t[j]) * mult + fb[j];
        }
      } else {
        for (int j = 0; j < nvalid; ++j) {
          const float mult = sa * bc[j];
          out[j] = float(t[j]) * mult;
        }
      }
    } else {
      std::memcpy(e.y + row * e.n + c0, t, size_t(nvalid) * sizeof(int32_t));
    }
  }
}

// Asks for the lines a tile's epilogue will write (rr rows of `bytes` at base, row_bytes
// apart) before its product runs. The results are mostly lines no recent step touched (a
// replayed signature's buffers are its own), and a store to such a line waits for it to be
// read from L3 or memory; requested here, they arrive while the product runs. Hints only:
// no value changes.
inline void prefetch_tile_out(const char* base, int rr, int64_t row_bytes, int64_t bytes) {
  for (int i = 0; i < rr; ++i)
    for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(base + i * row_bytes + o, _MM_HINT_T0);
}

void epilogue_baseline(int32_t* tile, int rr, int64_t i0, int c0, int nvalid,
                       const EpilogueArgs& e) {
  epilogue_body(tile, rr, i0, c0, nvalid, e);
}

// the same loops compiled for 512-bit vectors (no FMA: -ffp-contract=off keeps the
// product and the bias addition two roundings)
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"))) void epilogue_avx512(
    int32_t* tile, int rr, int64_t i0, int c0, int nvalid, const EpilogueArgs& e) {
  epilogue_body(tile, rr, i0, c0, nvalid, e);
}

}  // namespace

void IntMatMul::product(const uint8_t* ap, int64_t kp, const int32_t* rowsum, int64_t m,
                        const uint32_t* za, int64_t za_step, int32_t* y, float* yf,
                        const float* a_scale, int64_t scale_step, const float* b_scale,
                        bool b_scale_per_column, const float* bias, int threads) const {
  // A path with its own panel layout (the AMX tiles) takes the product on its panels (made
  // once per path, Panels::own) when the reduction and the rows are long enough, as the
  // convolution's driver decides (driver.cpp); shorter ones go to its register path
  // (short_gemm), which reads the shared layout.
  const IsaTable* isa = active_table();
  const Panels::Own* own_b = nullptr;
  if (isa->pack_panel != nullptr && (isa->short_gemm == nullptr ||
                                     (4 * int64_t(kc4_) >= short_gemm_bytes() &&
                                      m >= short_gemm_rows())))
    own_b = &panels_->own(*isa);
  while (own_b == nullptr && isa->pack_panel != nullptr && isa->short_gemm != nullptr)
    isa = isa->short_gemm;
  // per column: K zb' - colsum, times the row's za' in the epilogue
  std::vector<int32_t> kz(colsum_.size());
  for (size_t c = 0; c < kz.size(); ++c)
    kz[c] = int32_t(uint32_t(k_) * uint32_t(zb_[c]) - uint32_t(colsum_[c]));
  // the weight scales per column (one repeated when per tensor)
  std::vector<float> bs;
  if (yf != nullptr) {
    bs.assign(size_t(round_up64(n_, kPanel)), 0.0f);
    for (int64_t c = 0; c < n_; ++c) bs[size_t(c)] = b_scale[b_scale_per_column ? c : 0];
  }
  std::vector<const uint8_t*> rows(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) rows[size_t(i)] = ap + i * kp;

  if (threads < 1) threads = ThreadPool::max_threads();
  const int64_t macs = m * k_ * n_;
  int nthreads = int(std::max<int64_t>(1, std::min<int64_t>(threads, macs / kMinMacsPerThread)));
  const int64_t mr_max = std::max(isa->mr, isa->mr_narrow);
  // tasks: a panel x a chunk of rows; rows split only when panels are too few to share
  int64_t chunk = m;
  if (nthreads > 1 && npanels_ < 2 * nthreads) {
    const int64_t per = (m * npanels_ + 4 * nthreads - 1) / (4 * nthreads);
    chunk = std::max(mr_max, (std::max<int64_t>(per, 1) + mr_max - 1) / mr_max * mr_max);
  }
  const int64_t nchunks = (m + chunk - 1) / chunk, ntasks = nchunks * npanels_;
  nthreads = int(std::min<int64_t>(nthreads, ntasks));
  std::atomic<int64_t> next{0};
  const int64_t zero_off = 0;
  const EpilogueArgs ep{kz.data(), za,      za_step,    rowsum,    zb_.data(), need_rowsum_,
                        y,         yf,      a_scale,    scale_step, bs.data(),  bias, n_};
  const std::string path = active_table()->name;
  const auto epilogue_fn =
      path == "avx512vnni" || path == "amx" ? &epilogue_avx512 : &epilogue_baseline;
  const char* out = yf != nullptr ? reinterpret_cast<const char*>(yf)
                                  : reinterpret_cast<const char*>(y);
  auto work = [&](int) {
    alignas(64) int32_t tile[kMaxMr * kPanel];
    for (int64_t task; (task = next.fetch_add(1, std::memory_order_relaxed)) < ntasks;) {
      const int pn = int(task % npanels_);
      const int64_t m0 = (task / npanels_) * chunk, m1 = std::min(m, m0 + chunk);
      const int c0 = pn * kPanel;
      const int nvalid = int(std::min<int64_t>(kPanel, n_ - c0));
      const int wp = (nvalid + 15) / 16 * 16;
      const int mr = wp <= 32 ? isa->mr_narrow : isa->mr;
      const int8_t* panel = own_b != nullptr ? own_b->panel(pn) : panels_->panel(pn);
      if (isa->gemm_prepare) isa->gemm_prepare();
      for (int64_t i0 = m0; i0 < m1; i0 += mr) {
        const int rr = int(std::min<int64_t>(mr, m1 - i0));
        prefetch_tile_out(out + (i0 * n_ + c0) * 4, rr, n_ * 4, int64_t(nvalid) * 4);
        isa->gemm(rr, wp, rows.data() + i0, &zero_off, 1, kc4_, panel, tile);
        epilogue_fn(tile, rr, i0, c0, nvalid, ep);
      }
    }
  };
  if (nthreads > 1)
    ThreadPool::instance().run(nthreads, work);
  else
    work(0);
}

namespace {

// min(0, min x) and max(0, max x) of x[0, n) in float32 (the sign of a zero result may
// differ from the reference's, which changes neither the scale nor the zero point); *nan set
// when some value is NaN. SSE2 (the baseline), two chains each to hide the latency.
void range(const float* x, int64_t n, float* lo, float* hi, bool* nan) {
  __m128 vlo = _mm_set1_ps(0.0f), vhi = _mm_set1_ps(0.0f), unord = _mm_setzero_ps();
  __m128 vlo2 = vlo, vhi2 = vhi, unord2 = unord;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128 v = _mm_loadu_ps(x + i), w = _mm_loadu_ps(x + i + 4);
    vlo = _mm_min_ps(vlo, v);
    vhi = _mm_max_ps(vhi, v);
    unord = _mm_or_ps(unord, _mm_cmpunord_ps(v, v));
    vlo2 = _mm_min_ps(vlo2, w);
    vhi2 = _mm_max_ps(vhi2, w);
    unord2 = _mm_or_ps(unord2, _mm_cmpunord_ps(w, w));
  }
  vlo = _mm_min_ps(vlo, vlo2);
  vhi = _mm_max_ps(vhi, vhi2);
  unord = _mm_or_ps(unord, unord2);
  alignas(16) float l[4], h[4];
  _mm_store_ps(l, vlo);
  _mm_store_ps(h, vhi);
  bool any_nan = _mm_movemask_ps(unord) != 0;
  float a = std::min(std::min(l[0], l[1]), std::min(l[2], l[3]));
  float b = std::max(std::max(h[0], h[1]), std::max(h[2], h[3]));
  for (; i < n; ++i) {
    if (std::isnan(x[i])) any_nan = true;
    a = std::min(a, x[i]);
    b = std::max(b, x[i]);
  }
  *lo = a, *hi = b, *nan = any_nan;
}

// y = clamp(rint(x / scale) + zp, 0, 255) for finite x and positive finite scale: |x / scale|
// stays near 255 at most, so the integer conversion (ties to even) is exact and the sum with
// the zero point an integer in float32 as in the reference
void quantize_span(const float* x, int64_t n, float scale, int32_t zp, uint8_t* y) {
  const __m128 s = _mm_set1_ps(scale);
  const __m128i z = _mm_set1_epi32(zp);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m128i q[4];
    for (int j = 0; j < 4; ++j)
      q[j] = _mm_add_epi32(_mm_cvtps_epi32(_mm_div_ps(_mm_loadu_ps(x + i + 4 * j), s)), z);
    // signed saturation to int16, then unsigned saturation to [0, 255]
    const __m128i w0 = _mm_packs_epi32(q[0], q[1]), w1 = _mm_packs_epi32(q[2], q[3]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm_packus_epi16(w0, w1));
  }
  for (; i < n; ++i) {
    const float v = std::nearbyint(x[i] / scale) + float(zp);
    y[i] = uint8_t(v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v));
  }
}

// range and quantize_span in 512-bit vectors (the AVX-512 paths): the same values. min and
// max are exact in any order (a zero's sign aside, as above); a NaN is flagged by its own
// compare; cvtps2dq gives the same integers, and the int32 clamp to [0, 255] the same bytes
// as the signed then unsigned saturating packs (out-of-range and NaN quotients convert to
// INT32_MIN, which both send to 0).
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"))) void range_avx512(
    const float* x, int64_t n, float* lo, float* hi, bool* nan) {
  __m512 vlo = _mm512_setzero_ps(), vhi = _mm512_setzero_ps();
  __m512 vlo2 = vlo, vhi2 = vhi;
  __mmask16 unord = 0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 v = _mm512_loadu_ps(x + i), w = _mm512_loadu_ps(x + i + 16);
    vlo = _mm512_min_ps(vlo, v);
    vhi = _mm512_max_ps(vhi, v);
    vlo2 = _mm512_min_ps(vlo2, w);
    vhi2 = _mm512_max_ps(vhi2, w);
    unord |= _mm512_cmp_ps_mask(v, w, _CMP_UNORD_Q);
  }
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    vlo = _mm512_min_ps(vlo, v);
    vhi = _mm512_max_ps(vhi, v);
    unord |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  }
  bool any_nan = unord != 0;
  float a = _mm512_reduce_min_ps(_mm512_min_ps(vlo, vlo2));
  float b = _mm512_reduce_max_ps(_mm512_max_ps(vhi, vhi2));
  for (; i < n; ++i) {
    if (std::isnan(x[i])) any_nan = true;
    a = std::min(a, x[i]);
    b = std::max(b, x[i]);
  }
  *lo = a, *hi = b, *nan = any_nan;
}

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"))) void quantize_span_avx512(
    const float* x, int64_t n, float scale, int32_t zp, uint8_t* y) {
  const __m512 s = _mm512_set1_ps(scale);
  const __m512i z = _mm512_set1_epi32(zp), lo = _mm512_setzero_si512(),
                hi = _mm512_set1_epi32(255);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_div_ps(_mm512_loadu_ps(x + i), s)), z);
    q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm512_cvtepi32_epi8(q));
  }
  for (; i < n; ++i) {
    const float v = std::nearbyint(x[i] / scale) + float(zp);
    y[i] = uint8_t(v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v));
  }
}

bool avx512_path() {
  const std::string path = active_table()->name;
  return path == "avx512vnni" || path == "amx";
}

// (D1)-(D3) for rows [0, m) of x into the uint8 rows the kernels read (below).
struct RowQuantArgs {
  const float* x;
  int64_t k, kp;
  uint8_t* ap;
  bool need_rowsum;
  QuantFn quantize_row;
  int32_t* rowsum;
  uint32_t* za;
  float* scale;
};

template <bool Wide>
__attribute__((always_inline)) inline void quantize_rows_body(const RowQuantArgs& q,
                                                              int64_t m) {
  const float tiny = std::numeric_limits<float>::min();   // the smallest normal float32
  for (int64_t i = 0; i < m; ++i) {
    const float* src = q.x + i * q.k;
    uint8_t* dst = q.ap + i * q.kp;
    float lo = 0.0f, hi = 0.0f;
    bool nan = false;
    if constexpr (Wide) {
      range_avx512(src, q.k, &lo, &hi, &nan);
    } else {
      range(src, q.k, &lo, &hi, &nan);
    }
    const bool has_nan = nan;
    if (nan) {
      // the reference's ReduceMax / ReduceMin keep a NaN only where ONNX Runtime's order
      // does (docs/operators.md (O127)): otherwise the row's range leaves its NaNs out
      const int64_t start = (4 - (i * q.k) % 4) % 4;
      const float top = ort_row_extreme(src, q.k, start, false);
      const float least = ort_row_extreme(src, q.k, start, true);
      if (!std::isnan(top) && !std::isnan(least)) {
        nan = false;
        lo = std::min(least, 0.0f), hi = std::max(top, 0.0f);
      }
    }
    const float span = hi - lo;
    if (nan || !std::isfinite(span)) {
      // The reference's values on such a row: a NaN makes lo, hi and the scale the
      // default NaN (ReduceMax's), so every output is that NaN. Otherwise (an infinity, or a
      // range past float32) the scale is +inf, every x / scale rounds to 0 or is NaN (cast
      // to 0, x86), so q = 0, and the zero point is rint(-lo / inf): 0, or NaN for lo = -inf,
      // whose int32 cast is INT32_MIN (x86); the product is then -zp * colsum.
      std::memset(dst, 0, size_t(q.kp));
      q.za[i] = !nan && std::isinf(lo) ? 0x80000000u : 0u;
      q.scale[i] = nan ? std::numeric_limits<float>::quiet_NaN()
                             : std::numeric_limits<float>::infinity();
      continue;
    }
    const float s = (span < tiny ? tiny : span) / 255.0f;
    // zp = clamp(rint(-lo / scale), 0, 255): an integer in [0, 255]
    float z = std::nearbyint(-lo / s);
    z = z < 0.0f ? 0.0f : (z > 255.0f ? 255.0f : z);
    // the active path's QuantizeLinear kernel (x / s, clamped, rounded half to even, + zp:
    // the same integers as (D3) for finite x, as quantize_portable)
    QuantArgs qa;
    qa.x = src, qa.y = dst, qa.n = q.k, qa.scale = s, qa.zp = int32_t(z), qa.qmin = 0,
    qa.qmax = 255;
    q.quantize_row(qa);
    if (has_nan) {   // a NaN's q: the reference's Cast<uint8>(Clip(NaN)), 0 (x86)
      for (int64_t p = 0; p < q.k; ++p)
        if (std::isnan(src[p])) dst[p] = 0;
    }
    std::memset(dst + q.k, 0, size_t(q.kp - q.k));
    if (q.need_rowsum) {   // (only read when some zb' != 0)
      uint32_t sum = 0;
      for (int64_t p = 0; p < q.k; ++p) sum += dst[p];
      q.rowsum[i] = int32_t(sum);
    }
    q.za[i] = uint32_t(z);
    q.scale[i] = s;
  }
}

void quantize_rows_baseline(const RowQuantArgs& q, int64_t m) {
  quantize_rows_body<false>(q, m);
}

// the same with the range pass in 512-bit vectors and the scalar steps (divisions, rint) in
// AVX-512's instruction set: rint is one instruction there (the baseline calls the C
// library); every value is the same
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"))) void quantize_rows_avx512(
    const RowQuantArgs& q, int64_t m) {
  quantize_rows_body<true>(q, m);
}

}  // namespace

void run_dynamic_quantize(const float* x, int64_t n, uint8_t* y, float* scale, uint8_t* zp,
                          int threads) {
  (void)threads;  // one pass over a few hundred KB at most in these files: one thread
  float lo = 0.0f, hi = 0.0f;
  bool nan = false;
  const bool wide = avx512_path();
  if (n > 0) (wide ? range_avx512 : range)(x, n, &lo, &hi, &nan);
  if (nan) lo = hi = 0.0f;  // the reference's min(0, NaN) and max(0, NaN) are 0
  const float s = (hi - lo) / 255.0f;
  *scale = s;
  if (s == 0.0f) {
    *zp = 0;
    std::memset(y, 0, size_t(n));
    return;
  }
  // NaN only for an infinite lo with an infinite scale: the reference's NaN zero point
  // casts to 0 (x86) and makes every y NaN before its cast, 0 as well
  float z = std::nearbyint(0.0f - lo / s);
  z = z < 0.0f ? 0.0f : (z > 255.0f ? 255.0f : z);
  *zp = std::isnan(z) ? 0 : uint8_t(z);
  if (std::isfinite(s)) {
    (wide ? quantize_span_avx512 : quantize_span)(x, n, s, int32_t(z), y);
    return;
  }
  // an infinite range: x / inf is 0 for finite x, NaN for infinite x, which the reference
  // casts to 0 (x86)
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] / s) + z;
    y[i] = std::isnan(v) ? 0 : uint8_t(v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v));
  }
}

// (D1)-(D4) in one call: the rows quantized into the uint8 panel rows the kernels read (no
// float copy of q), then the product with one zero point and scale per row; rows that are
// not finite get the unfused operators' values (below).
void IntMatMul::run_per_token(const float* x, int64_t m, const float* b_scale,
                              bool b_scale_per_column, const float* bias, float* yf,
                              int threads) const {
  if (m <= 0 || n_ == 0) return;
  if (k_ <= 0) throw std::invalid_argument("run_per_token needs k > 0");
  const int64_t kp = round_up64(4 * int64_t(kc4_), 64);
  std::vector<uint8_t> buf(size_t(m * kp + 64));
  uint8_t* const ap = buf.data() + align64_offset(buf.data());
  std::vector<int32_t> rowsum(static_cast<size_t>(m), 0);
  std::vector<uint32_t> za(static_cast<size_t>(m), 0);
  std::vector<float> scale(static_cast<size_t>(m), 0.0f);
  const IsaTable* isa = active_table();
  const QuantFn quantize_row = isa->quantize != nullptr ? isa->quantize : quantize_portable;
  RowQuantArgs q{x, k_, kp, ap, need_rowsum_, quantize_row, rowsum.data(), za.data(),
                 scale.data()};
  (avx512_path() ? quantize_rows_avx512 : quantize_rows_baseline)(q, m);
  product(ap, kp, rowsum.data(), m, za.data(), 1, nullptr, yf, scale.data(), 1, b_scale,
          b_scale_per_column, bias, threads);
}

}  // namespace lowp
