// Driver layer: ONNX Attention per (batch, query head) task (float_attention.h), in the order
// of lowp.runtime.float_attention's loop, with the existing SGEMM (run_mlas_sgemm, one
// thread) and softmax (the active path's softmax_rows). Plain float operations only (the
// build's -ffp-contract=off; the NaN order written out where two NaNs may meet), so one
// portable translation unit serves every path.
// A causal node multiplies, in blocks of 32 query rows, only the keys some row of the block
// sees where that provably gives the full products' bits (causal_scores, causal_values; the
// scan of the operands that decides it uses AVX-512 where the CPU has it: no value comes
// from it).
#include "float_attention.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "float_kernels.h"
#include "float_nan.h"
#include "threadpool.h"

namespace lowp {
namespace {

// x[0 .. n) rounded to float16 and back (float16 inputs: ONNX Runtime stores each step's
// result as float16): vcvtps2ph to nearest even and vcvtph2ps on every value, as numpy's
// astype rounds the reference's (the values here come out of arithmetic, so any NaN is
// quiet, and keeps its sign and top payload bits either way; not cast_half.h's conversions,
// which mirror ONNX Runtime's Cast and its C++ tail)
__attribute__((target("avx,f16c"))) void round_half(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i),
                                                            _MM_FROUND_TO_NEAREST_INT)));
  for (; i < n; ++i)
    x[i] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph(_mm_set_ss(x[i]), _MM_FROUND_TO_NEAREST_INT)));
}

// n floats left uninitialised (each user writes every value it reads; a vector's resize
// cleared them on every call, a few percent of the node at sequence 256)
struct FloatBuffer {
  std::unique_ptr<float[]> p;
  size_t n = 0;
  // room for `size` floats; what was there is kept only when it fits
  void reserve(size_t size) {
    if (size > n) p.reset(new float[size]), n = size;
  }
  void release() { p.reset(), n = 0; }
  float* data() { return p.get(); }
  const float* data() const { return p.get(); }
};

// The buffers of one worker: the scores and the probabilities, kept by each thread between
// calls up to kKeptScratch floats.
struct Scratch {
  FloatBuffer s, p;
};
constexpr size_t kKeptScratch = size_t(1) << 22;

// present = past then the input's rows, per (batch, kv head); `width` floats a row
void concat_present(const AttentionArgs& a, const float* past, const float* x, int64_t width,
                    float* present) {
  const int64_t total = a.past + a.kv_seq;
  // the input's row t of kv head h in batch b
  const int64_t xb = a.kv_seq * a.kv_heads * width, xh = a.three_d ? width : a.kv_seq * width,
                xt = a.three_d ? a.kv_heads * width : width;
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t h = 0; h < a.kv_heads; ++h) {
      float* to = present + (b * a.kv_heads + h) * total * width;
      if (a.past > 0)
        std::memcpy(to, past + (b * a.kv_heads + h) * a.past * width,
                    size_t(a.past * width) * sizeof(float));
      for (int64_t t = 0; t < a.kv_seq; ++t)
        std::memcpy(to + (a.past + t) * width, x + b * xb + h * xh + t * xt,
                    size_t(width) * sizeof(float));
    }
}

// Batch entry b's mask for query head h into m (seq x total): the attention mask's slice
// (0 or low for a boolean one), then the causal pattern (t > offset + s set to low; zeros
// first without a mask), where there is a mask (`masked`). hidden[s]: row s is hidden whole
// (each position's value at most low, a NaN not, or at or past `end`).
void head_mask(const AttentionArgs& a, int64_t b, int64_t h, bool masked, float* m,
               uint8_t* hidden) {
  const int64_t total = a.past + a.kv_seq, n = a.seq * total;
  const int64_t end = a.valid != nullptr ? a.valid[b] : total;
  const int64_t slice = ((a.mask_batch == 1 ? 0 : b) * a.mask_heads +
                         (a.mask_heads == 1 ? 0 : h)) * n;
  if (a.mask != nullptr) {
    std::memcpy(m, a.mask + slice, size_t(n) * sizeof(float));
  } else if (a.bool_mask != nullptr) {
    for (int64_t i = 0; i < n; ++i) m[i] = a.bool_mask[slice + i] ? 0.0f : a.low;
  } else if (a.causal) {
    std::fill_n(m, n, 0.0f);
  }
  if (a.causal) {
    const int64_t offset = a.valid != nullptr ? end - a.seq : a.past;
    for (int64_t s = 0; s < a.seq; ++s)
      std::fill(m + s * total + std::clamp<int64_t>(s + offset + 1, 0, total),
                m + (s + 1) * total, a.low);
  }
  for (int64_t s = 0; s < a.seq; ++s) {
    bool all = true;
    for (int64_t t = 0; all && t < total; ++t)
      all = (masked && m[s * total + t] <= a.low) || (a.valid != nullptr && t >= end);
    hidden[s] = all;
  }
}

// The masks of a node, made once before the (batch, head) tasks: one slice (and its hidden
// rows) per batch entry where the mask or nonpad_kv_seqlen differs between entries, per
// head where the mask does.
struct Masks {
  bool masked = false, any_hidden = false;
  int64_t batches = 1, heads = 1;
  FloatBuffer m;
  std::vector<uint8_t> hidden;

  Masks(const AttentionArgs& a, int threads) {
    masked = a.mask != nullptr || a.bool_mask != nullptr || a.causal;
    any_hidden = masked || a.valid != nullptr;
    if (!any_hidden) return;
    batches = a.mask_batch != 1 || a.valid != nullptr ? a.batch : 1;
    heads = a.mask != nullptr || a.bool_mask != nullptr ? a.mask_heads : 1;
    const int64_t n = a.seq * (a.past + a.kv_seq), slices = batches * heads;
    if (masked) m.reserve(size_t(slices * n));
    hidden.resize(size_t(slices * a.seq));
    const int workers = int(std::max<int64_t>(1, std::min<int64_t>(threads, slices)));
    ThreadPool::instance().run(workers, [&](int t) {
      for (int64_t i = t; i < slices; i += workers)
        head_mask(a, i / heads, i % heads, masked, masked ? m.data() + i * n : nullptr,
                  hidden.data() + i * a.seq);
    });
  }
  // the slice of batch entry b and query head h
  int64_t index(int64_t b, int64_t h) const {
    return (batches == 1 ? 0 : b) * heads + (heads == 1 ? 0 : h);
  }
};

// The two products of batch entry b and query head h (their A, B, shape and flags; C and
// the mask set by the caller): scale * Q·Kᵀ and P·V, K and V of key/value head
// h * kv_heads / heads read from the present copies, else from the inputs in place.
SgemmArgs scores_product(const AttentionArgs& a, int64_t b, int64_t h) {
  const int64_t total = a.past + a.kv_seq, hk = h * a.kv_heads / a.heads;
  SgemmArgs g;
  g.a = a.q + b * a.seq * a.heads * a.head + h * (a.three_d ? a.head : a.seq * a.head);
  g.sa_m = a.three_d ? a.heads * a.head : a.head, g.sa_k = 1;
  if (a.present_k != nullptr) {
    g.b = a.present_k + (b * a.kv_heads + hk) * total * a.head, g.sb_n = a.head;
  } else {
    g.b = a.k + b * a.kv_seq * a.kv_heads * a.head +
          hk * (a.three_d ? a.head : a.kv_seq * a.head);
    g.sb_n = a.three_d ? a.kv_heads * a.head : a.head;
  }
  g.sb_k = 1;
  g.m = a.seq, g.k = a.head, g.n = total;
  g.alpha = a.scale, g.trans_b = true, g.unit_ldb = a.k_unit_ld;
  return g;
}

SgemmArgs values_product(const AttentionArgs& a, int64_t b, int64_t h) {
  const int64_t total = a.past + a.kv_seq, hk = h * a.kv_heads / a.heads;
  SgemmArgs o;
  o.sa_m = total, o.sa_k = 1;
  if (a.present_v != nullptr) {
    o.b = a.present_v + (b * a.kv_heads + hk) * total * a.v_head, o.sb_k = a.v_head;
  } else {
    o.b = a.v + b * a.kv_seq * a.kv_heads * a.v_head +
          hk * (a.three_d ? a.v_head : a.kv_seq * a.v_head);
    o.sb_k = a.three_d ? a.kv_heads * a.v_head : a.v_head;
  }
  o.sb_n = 1;
  o.m = a.seq, o.k = total, o.n = a.v_head;
  o.unit_ldb = a.v_unit_ld;
  return o;
}

// Kᵀ's and V's panels packed once per (batch entry, key/value head) where query heads share
// a key/value head (each product would pack the same panels itself: the same values, as a
// constant B's panels packed beforehand)
struct SharedPanels {
  SgemmPanels kp, vp;
  FloatBuffer k, v;

  SharedPanels(const AttentionArgs& a, int threads) {
    if (a.heads == a.kv_heads) return;
    const int64_t pairs = a.batch * a.kv_heads, group = a.heads / a.kv_heads;
    kp = sgemm_panels(scores_product(a, 0, 0));
    vp = sgemm_panels(values_product(a, 0, 0));
    k.reserve(size_t(pairs * kp.floats)), v.reserve(size_t(pairs * vp.floats));
    const int workers = int(std::max<int64_t>(1, std::min<int64_t>(threads, pairs)));
    ThreadPool::instance().run(workers, [&](int t) {
      for (int64_t i = t; i < pairs; i += workers) {
        const int64_t b = i / a.kv_heads, h = i % a.kv_heads * group;
        if (kp.floats > 0) pack_sgemm_panels(scores_product(a, b, h), kp, k.data() + i * kp.floats);
        if (vp.floats > 0) pack_sgemm_panels(values_product(a, b, h), vp, v.data() + i * vp.floats);
      }
    });
  }
  // g reads the panels of batch entry b's key/value head hk
  static void use(SgemmArgs& g, const SgemmPanels& p, const FloatBuffer& all, int64_t i) {
    if (p.floats <= 0 || all.data() == nullptr) return;
    g.panels = all.data() + i * p.floats;
    g.panels_stride_k = p.stride_k, g.panels_width = p.width;
  }
};

// The largest |x[i]| of x[0 .. n) into `largest`; false when some value is not finite.
__attribute__((target("avx512f"))) bool largest_magnitude_avx512(const float* x, int64_t n,
                                                                 float& largest) {
  const __m512 top = _mm512_set1_ps(FLT_MAX);
  __m512 m0 = _mm512_setzero_ps(), m1 = m0;
  __mmask16 bad = 0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 v0 = _mm512_abs_ps(_mm512_loadu_ps(x + i));
    const __m512 v1 = _mm512_abs_ps(_mm512_loadu_ps(x + i + 16));
    bad |= _mm512_cmp_ps_mask(v0, top, _CMP_NLE_UQ) | _mm512_cmp_ps_mask(v1, top, _CMP_NLE_UQ);
    m0 = _mm512_max_ps(m0, v0), m1 = _mm512_max_ps(m1, v1);
  }
  if (i < n) {  // the rest in two masked loads (0 in the lanes past the end)
    for (int q = 0; q < 2 && i < n; ++q, i += 16) {
      const __mmask16 k = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
      const __m512 v = _mm512_abs_ps(_mm512_maskz_loadu_ps(k, x + i));
      bad |= _mm512_cmp_ps_mask(v, top, _CMP_NLE_UQ);
      m0 = _mm512_max_ps(m0, v);
    }
  }
  largest = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
  return bad == 0;
}

bool largest_magnitude(const float* x, int64_t n, float& largest) {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (avx512) return largest_magnitude_avx512(x, n, largest);
  int64_t i = 0;
  bool finite = true;
  float m = 0.0f;
#if defined(__SSE2__)
  const __m128 sign = _mm_set1_ps(-0.0f), top = _mm_set1_ps(FLT_MAX);
  __m128 mv = _mm_setzero_ps(), bad = _mm_setzero_ps();
  for (; i + 4 <= n; i += 4) {
    const __m128 v = _mm_andnot_ps(sign, _mm_loadu_ps(x + i));
    bad = _mm_or_ps(bad, _mm_cmpnle_ps(v, top));  // infinite or NaN
    mv = _mm_max_ps(mv, v);
  }
  finite = _mm_movemask_ps(bad) == 0;
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, mv);
  for (const float l : lanes) m = std::max(m, l);
#endif
  for (; i < n; ++i) {
    const float v = std::fabs(x[i]);
    finite = finite && v <= FLT_MAX;
    m = std::max(m, v);
  }
  largest = m;
  return finite;
}

// Whether every |scale * q·k| of the node stays below 2^100 (every value of Q and of the
// keys finite): the causal mask's lowest float plus such a product (MLAS's C + alpha * acc,
// one rounding or two) is the lowest float again, whose ulp is 2^104. Then a key the causal
// pattern hides needs no product.
bool scores_bounded(const AttentionArgs& a) {
  const int64_t total = a.past + a.kv_seq;
  float mq = 0.0f, mk = 0.0f;
  const bool finite =
      largest_magnitude(a.q, a.batch * a.heads * a.seq * a.head, mq) &&
      (a.present_k != nullptr
           ? largest_magnitude(a.present_k, a.batch * a.kv_heads * total * a.head, mk)
           : largest_magnitude(a.k, a.batch * a.kv_heads * a.kv_seq * a.head, mk));
  return finite && double(a.scale) * double(a.head) * double(mq) * double(mk) < 0x1p100;
}

// Query rows per block of a causal node's scores (`causal_scores`).
constexpr int64_t kCausalRows = 32;

// S = scale * Q·Kᵀ + the mask (folded as C) of a causal node whose products are bounded
// (`scores_bounded`), in blocks of kCausalRows query rows: each block's product over the keys
// some row of it sees (`offset`: row r sees keys up to r + offset), rounded up to 32
// columns; the keys after those take the lowest float, the value the full product gives
// there. Every computed value is the full product's (each one its own chain over the head,
// the same K blocks: a block whose K blocks would differ takes every key), and no block has
// one row (the M = 1 kernel).
void causal_scores(const AttentionArgs& a, const SgemmArgs& g, int64_t offset) {
  const int64_t total = g.n, stride = sgemm_panels(g).stride_k;
  // the shared panels of the first keys are a prefix of all keys' panels
  const bool prefix = g.k <= stride && total <= kSgemmPanelColumns;
  for (int64_t r0 = 0, r1 = 0; r0 < a.seq; r0 = r1) {
    r1 = std::min(a.seq, r0 + kCausalRows);
    if (a.seq - r1 == 1) r1 = a.seq;
    SgemmArgs gb = g;
    gb.a = g.a + r0 * g.sa_m, gb.m = r1 - r0;
    gb.c = g.c + r0 * g.ldc, gb.init = g.init + r0 * g.si_m;
    gb.n = std::clamp<int64_t>((r1 + offset + 31) / 32 * 32, 0, total);
    if (gb.n > 0 && gb.n < total) {
      const int64_t sb = sgemm_panels(gb).stride_k;
      if (sb <= 0 || (sb != stride && g.k > std::min(sb, stride)))
        gb.n = total;
      else if (!prefix)
        gb.panels = nullptr;
    }
    if (gb.n > 0) run_mlas_sgemm(gb, 1);
    if (gb.n < total)
      for (int64_t r = r0; r < r1; ++r) std::fill(g.c + r * g.ldc + gb.n, g.c + (r + 1) * g.ldc, a.low);
  }
}

uint32_t bits_of(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits;
}

// Whether the bits of x[0 .. n) are all 0 (+0.0f).
bool all_plus_zero(const float* x, int64_t n) {
  int64_t i = 0;
#if defined(__SSE2__)
  __m128i any = _mm_setzero_si128();
  for (; i + 4 <= n; i += 4)
    any = _mm_or_si128(any, _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
  if (_mm_movemask_epi8(_mm_cmpeq_epi32(any, _mm_setzero_si128())) != 0xFFFF) return false;
#endif
  for (; i < n; ++i)
    if (bits_of(x[i]) != 0) return false;
  return true;
}

// Whether some x[i] of x[0 .. n) is -0.0f.
bool has_minus_zero(const float* x, int64_t n) {
  int64_t i = 0;
#if defined(__SSE2__)
  const __m128i minus = _mm_set1_epi32(int32_t(0x80000000u));
  __m128i any = _mm_setzero_si128();
  for (; i + 4 <= n; i += 4)
    any = _mm_or_si128(any, _mm_cmpeq_epi32(
                                _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)), minus));
  if (_mm_movemask_epi8(any) != 0) return true;
#endif
  for (; i < n; ++i)
    if (bits_of(x[i]) == 0x80000000u) return true;
  return false;
}

// Whether every value of V (the present values with a past) is finite: then a probability
// of +0 times it adds ±0 to a sum, which changes nothing but the sign of a -0 sum.
bool values_finite(const AttentionArgs& a) {
  float m = 0.0f;
  return a.present_v != nullptr
             ? largest_magnitude(a.present_v,
                                 a.batch * a.kv_heads * (a.past + a.kv_seq) * a.v_head, m)
             : largest_magnitude(a.v, a.batch * a.kv_heads * a.kv_seq * a.v_head, m);
}

// Y = P·V of a causal node whose V is finite (`values_finite`), in the row blocks of
// causal_scores: a block whose probabilities are +0 from the block's last seen key on is
// multiplied over the keys before it only. The keys left out add fma(+0, v, sum) = sum + ±0
// to each chain (in the same K blocks, else the block takes every key), which changes a
// sum only where it is -0: a block with a -0 result is computed again over every key.
// With V's panels shared (`o.panels`, one K block), each strip of 2W columns is its own
// product over the first rows of its panel.
void causal_values(const AttentionArgs& a, const SgemmArgs& o, int64_t offset) {
  const int64_t total = o.k, full_stride = sgemm_panels(o).stride_k;
  const int64_t strip = 2 * o.panels_width;
  const bool strips = o.panels != nullptr && total <= o.panels_stride_k &&
                      o.n <= kSgemmPanelColumns && strip > 0 && o.n % strip == 0;
  for (int64_t r0 = 0, r1 = 0; r0 < a.seq; r0 = r1) {
    r1 = std::min(a.seq, r0 + kCausalRows);
    if (a.seq - r1 == 1) r1 = a.seq;
    SgemmArgs ob = o;
    ob.a = o.a + r0 * o.sa_m, ob.m = r1 - r0, ob.c = o.c + r0 * o.ldc;
    const int64_t keys = std::clamp<int64_t>((r1 + offset + 31) / 32 * 32, 0, total);
    bool cut = keys > 0 && keys < total && full_stride > 0;
    if (cut) {
      ob.k = keys;
      const int64_t st = sgemm_panels(ob).stride_k;
      cut = st > 0 && (st == full_stride || keys <= std::min(st, full_stride));
    }
    for (int64_t r = r0; cut && r < r1; ++r) cut = all_plus_zero(o.a + r * o.sa_m + keys, total - keys);
    if (cut) {
      if (strips) {
        for (int64_t j0 = 0; j0 < o.n; j0 += strip) {
          SgemmArgs os = ob;
          os.n = strip, os.b = o.b + j0 * o.sb_n, os.c = ob.c + j0;
          os.panels = o.panels + j0 * total;
          os.panels_stride_k = sgemm_panels(os).stride_k;
          run_mlas_sgemm(os, 1);
        }
      } else {
        ob.panels = nullptr;
        run_mlas_sgemm(ob, 1);
      }
      for (int64_t r = r0; cut && r < r1; ++r) cut = !has_minus_zero(ob.c + (r - r0) * o.ldc, o.n);
      if (cut) continue;
    }
    ob.k = total, ob.panels = o.panels;
    run_mlas_sgemm(ob, 1);
  }
}

// One (batch entry, query head): lowp.runtime.float_attention's loop body. `causal`: the
// scores by causal_scores; `values`: Y by causal_values.
void attend(const AttentionArgs& a, const FloatKernels& fk, const Masks& masks,
            const SharedPanels& panels, bool causal, bool values, int64_t b, int64_t h,
            Scratch& w) {
  const int64_t total = a.past + a.kv_seq, n = a.seq * total;
  const int64_t pair = b * a.kv_heads + h * a.kv_heads / a.heads;
  const int64_t end = a.valid != nullptr ? a.valid[b] : total;
  float *s = w.s.data(), *p = w.p.data();
  const bool has_mask = masks.masked, any_hidden = masks.any_hidden;
  const int64_t slice = masks.index(b, h);
  const float* m = has_mask ? masks.m.data() + slice * n : nullptr;
  const uint8_t* hidden = any_hidden ? masks.hidden.data() + slice * a.seq : nullptr;
  // S = scale * Q·Kᵀ (+ the mask as C)
  SgemmArgs g = scores_product(a, b, h);
  SharedPanels::use(g, panels.kp, panels.k, pair);
  g.c = s, g.ldc = total;
  if (has_mask && a.fold) g.init = m, g.si_m = total, g.si_n = 1;
  const int64_t offset = a.valid != nullptr ? end - a.seq : a.past;
  if (causal)
    causal_scores(a, g, offset);
  else
    run_mlas_sgemm(g, 1);
  if (a.half) round_half(s, n);
  float* qk = a.qk != nullptr ? a.qk + (b * a.heads + h) * n : nullptr;
  if (a.mode == 0) std::memcpy(qk, s, size_t(n) * sizeof(float));
  if (a.softcap != 0.0f) {  // MlasComputeSoftcap: the C library's tanhf
    for (int64_t i = 0; i < n; ++i) s[i] = ::tanhf(s[i] / a.softcap) * a.softcap;
    if (a.half) round_half(s, n);
  }
  if (a.mode == 1) std::memcpy(qk, s, size_t(n) * sizeof(float));
  if (has_mask && !a.fold) {  // MlasEltwiseAdd (mask + scores); float16: scores + mask
    for (int64_t i = 0; i < n; ++i)
      s[i] = a.half ? first_nan_add(s[i], m[i]) : first_nan_add(m[i], s[i]);
    if (a.half) round_half(s, n);
  }
  if (a.valid != nullptr)
    for (int64_t r = 0; r < a.seq; ++r) std::fill(s + r * total + end, s + (r + 1) * total, a.low);
  if (a.mode == 2) std::memcpy(qk, s, size_t(n) * sizeof(float));
  fk.softmax_rows(s, p, a.seq, total, false);
  if (a.half) round_half(p, n);
  if (any_hidden)
    for (int64_t r = 0; r < a.seq; ++r)
      if (hidden[r]) std::fill_n(p + r * total, total, 0.0f);
  if (a.mode == 3) std::memcpy(qk, p, size_t(n) * sizeof(float));
  // Y = P·V into the output's rows
  SgemmArgs o = values_product(a, b, h);
  SharedPanels::use(o, panels.vp, panels.v, pair);
  o.a = p;
  const int64_t y_s = a.three_d ? a.heads * a.v_head : a.v_head;
  o.c = a.y + b * a.seq * a.heads * a.v_head + h * (a.three_d ? a.v_head : a.seq * a.v_head);
  o.ldc = y_s;
  if (values)
    causal_values(a, o, offset);
  else
    run_mlas_sgemm(o, 1);
  if (a.half)
    for (int64_t r = 0; r < a.seq; ++r) round_half(o.c + r * y_s, a.v_head);
}

}  // namespace

bool run_float_attention(const AttentionArgs& a, int threads) {
  const int64_t total = a.past + a.kv_seq;
  if (a.valid != nullptr)
    for (int64_t b = 0; b < a.batch; ++b)
      if (a.valid[b] < 0 || a.valid[b] > total) return false;
  if (a.present_k != nullptr) concat_present(a, a.past_k, a.k, a.head, a.present_k);
  if (a.present_v != nullptr) concat_present(a, a.past_v, a.v, a.v_head, a.present_v);
  const int64_t tasks = a.batch * a.heads;
  if (tasks <= 0 || a.seq <= 0 || total <= 0) return true;
  const FloatKernels& fk = active_float_kernels();
  if (threads <= 0) threads = ThreadPool::max_threads();
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, tasks)));
  const Masks masks(a, threads);
  const SharedPanels panels(a, threads);
  // (the causal pattern with its mask folded into the product, float32, blocks to skip)
  const bool causal = a.causal && a.fold && masks.masked && !a.half && a.seq > kCausalRows &&
                      total > kCausalRows && scores_bounded(a);
  const bool values = a.causal && masks.masked && !a.half && a.seq > kCausalRows &&
                      total > kCausalRows && values_finite(a);
  std::atomic<int64_t> next{0};
  const size_t n = size_t(a.seq * total);
  ThreadPool::instance().run(threads, [&](int) {
    thread_local Scratch w;
    w.s.reserve(n), w.p.reserve(n);
    for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < tasks;)
      attend(a, fk, masks, panels, causal, values, t / a.heads, t % a.heads, w);
    if (n > kKeptScratch) w.s.release(), w.p.release();
  });
  return true;
}

}  // namespace lowp
