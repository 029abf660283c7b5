// Kernel layer: float32 element-wise glue (see float_elementwise.h). Binary rows are the
// active path's FloatKernels::binary_row (float_impl.h, compiled per instruction set); the
// rest are plain loops the compiler vectorizes at the baseline ISA; -ffp-contract=off keeps
// one rounding per operation.
#include "float_elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "float_kernels.h"
#include "ort_blocks.h"
#include "threadpool.h"

namespace lowp {

namespace {

constexpr int64_t kBlock = int64_t(1) << 15;  // elements per thread, at least

// ONNX Runtime's float Max / Min (docs/operators.md (O105)): Eigen's E1.max(E2) on each
// row (E1 = a, or b when a is one value in the row), in 4-float packets at the output's
// 16-byte-aligned positions inside the row (E1 if it is NaN, else E2 on a tie or a NaN E2:
// maxps(E1, E2)) and in the scalar head and tail (E1 if NaN, else E2 if NaN, else E1 on a
// tie). Output elements [e, e + m) of the row [rs, rs + n).
// (strides 1 and 0 known at compile time, so the loop vectorizes; -1: any stride)
template <bool IsMax, bool Packet, int S1, int S2>
void max_min_run(const float* p1, int64_t s1, const float* p2, int64_t s2, float* y,
                 int64_t m) {
  if constexpr (S1 >= 0) s1 = S1;
  if constexpr (S2 >= 0) s2 = S2;
  for (int64_t j = 0; j < m; ++j) {
    const float x1 = p1[j * s1], x2 = p2[j * s2];
    // packets: maxps(E1, E2) kept E1 when NaN; scalars: E1 unless E2 wins or is NaN
    const bool first = Packet ? (x1 != x1 || (IsMax ? x1 > x2 : x1 < x2))
                              : (x1 != x1 || !(x2 != x2 || (IsMax ? x1 < x2 : x2 < x1)));
    y[j] = first ? x1 : x2;
  }
}

template <bool IsMax>
void max_min_row(const float* a, int64_t sa, const float* b, int64_t sb, float* y, int64_t e,
                 int64_t m, int64_t rs, int64_t n) {
  const bool swap = sa == 0;
  const float* p1 = swap ? b : a;
  const float* p2 = swap ? a : b;
  const int64_t s1 = swap ? sb : sa, s2 = swap ? sa : sb;
  // [e, e + m) cut at the row's first aligned packet and the end of its last whole one
  const int64_t lo = std::min(rs + n, (rs + 3) / 4 * 4);
  const int64_t hi = std::max(lo, (rs + n) / 4 * 4);
  const int64_t c0 = std::clamp(lo, e, e + m) - e, c1 = std::clamp(hi, e, e + m) - e;
  auto run = [&](auto packet, auto fixed1, auto fixed2, int64_t from, int64_t to) {
    max_min_run<IsMax, decltype(packet)::value, decltype(fixed1)::value,
                decltype(fixed2)::value>(p1 + from * s1, s1, p2 + from * s2, s2, y + e + from,
                                         to - from);
  };
  using P = std::true_type;
  using S = std::false_type;
  using One = std::integral_constant<int, 1>;
  using Zero = std::integral_constant<int, 0>;
  using Any = std::integral_constant<int, -1>;
  if (s1 == 1 && s2 == 1) {
    run(S{}, One{}, One{}, 0, c0), run(P{}, One{}, One{}, c0, c1), run(S{}, One{}, One{}, c1, m);
  } else if (s1 == 1 && s2 == 0) {
    run(S{}, One{}, Zero{}, 0, c0), run(P{}, One{}, Zero{}, c0, c1);
    run(S{}, One{}, Zero{}, c1, m);
  } else {
    run(S{}, Any{}, Any{}, 0, c0), run(P{}, Any{}, Any{}, c0, c1), run(S{}, Any{}, Any{}, c1, m);
  }
}

// Whether y[0, n) holds a NaN (on the bits, so that the loop vectorizes: |y| above inf).
bool any_nan(const float* y, int64_t n) {
  int32_t found = 0;
  for (int64_t j = 0; j < n; ++j) {
    int32_t bits;
    std::memcpy(&bits, y + j, sizeof bits);
    found |= int32_t((bits & 0x7FFFFFFF) > 0x7F800000);
  }
  return found != 0;
}

// ONNX Runtime's NaN of two NaN operands (docs/operators.md (O116)) in Add, Sub, Mul and
// Div's output elements [e, e + m) (y[0, m)), written over what the row kernel gave: x86
// gives its first source operand's, quieted. Sub and Div input 0's; Add and Mul (Eigen's
// sum and product) by the position in ONNX Runtime's broadcast run of `run` elements (a
// run of the whole output of `total` cut into TryParallelFor's blocks at several threads):
// both operands whole in the run, a's in the scalar head, b's in the 4-float packets and
// in a tail of one, a's in a tail of two or three; one operand one value in the run (a
// when both are: ONNX Runtime asks it first), the whole one's but on the last element of a
// tail of three. Operands read before y is written: y must not be a or b.
// `places` (OrtPlaces): where a run of the whole output has element i of y in ONNX
// Runtime: channels_last, (n, s, c) at (n * C + c) * H W + s; block, (n, c, s) at
// ((n * blocks + c / block) * H W + s) * block + c % block in the blocked tensor, whose
// element count is then the run's.
void two_nans(int op, const float* a, int64_t sa, const float* b, int64_t sb, float* y,
              int64_t e, int64_t m, int64_t run, int64_t total, int threads, bool a_one,
              bool b_one, const OrtPlaces& places = OrtPlaces{}) {
  if (!any_nan(y, m)) return;
  const bool whole = run == total && places.channels > 0 && places.plane > 0;
  const bool moved = whole && places.channels_last;
  const bool blocked = whole && !moved && places.block > 0 && !a_one && !b_one;
  const int64_t nb = blocked ? places.block : 1, nc = places.channels, plane = places.plane;
  const int64_t padded = (nc + nb - 1) / nb * nb;
  if (blocked) total = run = total / (nc * plane) * padded * plane;
  // (Add's TryParallelFor cost: 1 cycle and 4 bytes loaded and stored an element)
  const int64_t block =
      run == total ? ort_parallel_block(total, 2.0 * 4 * kOrtByteCycles + 1.0, threads) : run;
  for (int64_t j = 0; j < m; ++j) {
    const float xa = a[j * sa], xb = b[j * sb];
    if (!(xa != xa && xb != xb)) continue;
    bool pick_b = false;
    if (op == kFloatAdd || op == kFloatMul) {
      int64_t i = e + j;
      if (moved) {
        i = (i / (plane * nc) * nc + i % nc) * plane + i / nc % plane;
      } else if (blocked) {
        const int64_t c = i / plane % nc, n = i / (plane * nc);
        i = ((n * (padded / nb) + c / nb) * plane + i % plane) * nb + c % nb;
      }
      const int64_t first = i - i % block;
      const int64_t last = std::min(total, first + block);
      const int64_t head = std::min(last, (first + 3) / 4 * 4);
      const int64_t tail = std::max(head, last / 4 * 4);
      const bool last_of_three = last - tail == 3 && i == last - 1;
      if (!a_one && !b_one) pick_b = i >= head && (i < tail || last - tail == 1);
      else pick_b = a_one ? !last_of_three : last_of_three;
    }
    uint32_t bits;
    std::memcpy(&bits, pick_b ? &xb : &xa, sizeof bits);
    bits |= 0x00400000u;
    std::memcpy(&y[j], &bits, sizeof bits);
  }
}

// Output elements [e0, e1) of the flattened (d0 * d1 * d2) x n output, row piece by row
// piece (a range may start and end inside a row).
void span(const FloatKernels& k, const FloatBinaryArgs& p, int64_t e0, int64_t e1, int64_t total,
          int threads) {
  const int64_t d1 = p.dims[1], d2 = p.dims[2], n = p.dims[3];
  for (int64_t e = e0; e < e1;) {
    const int64_t r = e / n, c = e % n, m = std::min(n - c, e1 - e);
    const int64_t i2 = r % d2, i1 = (r / d2) % d1, i0 = r / (d2 * d1);
    const float* a = p.a + i0 * p.a_st[0] + i1 * p.a_st[1] + i2 * p.a_st[2] + c * p.a_st[3];
    const float* b = p.b + i0 * p.b_st[0] + i1 * p.b_st[1] + i2 * p.b_st[2] + c * p.b_st[3];
    if (p.op == kFloatMax || p.op == kFloatMin)
      (p.op == kFloatMax ? max_min_row<true> : max_min_row<false>)(
          a, p.a_st[3], b, p.b_st[3], p.y, e, m, r * n, n);
    else if (k.binary_row(p.op, a, p.a_st[3], b, p.b_st[3], p.y + e, m) && p.op <= kFloatDiv)
      two_nans(p.op, a, p.a_st[3], b, p.b_st[3], p.y + e, e, m, n, total, threads,
               p.a_st[3] == 0 || n == 1, p.b_st[3] == 0 && p.a_st[3] != 0 && n != 1, p.places);
    e += m;
  }
}

}  // namespace

void run_float_binary(const FloatBinaryArgs& p, int threads) {
  const int64_t count = p.dims[0] * p.dims[1] * p.dims[2], n = p.dims[3];
  if (count == 0 || n == 0) return;
  const FloatKernels& k = active_float_kernels();
  // split the output elements between threads, whatever the row length (one long row: an
  // operand broadcast from a single value)
  run_elementwise(count * n, kBlock, threads,
                  [&](int64_t e0, int64_t len) { span(k, p, e0, e0 + len, count * n, threads); });
}

void run_float_clamp(const float* x, float* y, int64_t n, float lo, float hi, bool use_lo,
                     bool use_hi, int threads) {
  // ONNX Runtime's Clip (Eigen's cwiseMax then cwiseMin) and MLAS's Relu / Clip
  // activations (maxps(lo, v) then minps(hi, v)): v < lo ? lo : v, then hi < v ? hi : v.
  // A NaN value or bound fails the comparison, so the value stays; so does -0 against a
  // bound of +0. One ordered comparison per bound, a branch-free vector select.
  run_elementwise(n, kBlock, threads, [&](int64_t i0, int64_t len) {
    const float* xs = x + i0;
    float* ys = y + i0;
    if (use_lo && use_hi) {
      for (int64_t i = 0; i < len; ++i) {
        const float v = xs[i] < lo ? lo : xs[i];
        ys[i] = hi < v ? hi : v;
      }
    } else if (use_lo) {
      for (int64_t i = 0; i < len; ++i) ys[i] = xs[i] < lo ? lo : xs[i];
    } else if (use_hi) {
      for (int64_t i = 0; i < len; ++i) ys[i] = hi < xs[i] ? hi : xs[i];
    } else {
      for (int64_t i = 0; i < len; ++i) ys[i] = xs[i];
    }
  });
}

AffineTable affine_table(const float* table) {
  for (const bool is_signed : {false, true}) {
    auto code = [&](int v) { return is_signed ? int32_t(int8_t(uint8_t(v))) : int32_t(v); };
    int zero = -1;  // the byte whose entry is +0: the zero point's
    for (int v = 0; v < 256 && zero < 0; ++v)
      if (std::signbit(table[v]) == 0 && table[v] == 0.0f) zero = v;
    if (zero < 0) continue;
    const int32_t zp = code(zero);
    // the scale: the entry of the code one above the zero point (or minus the one below)
    int up = -1, down = -1;
    for (int v = 0; v < 256; ++v) {
      if (code(v) == zp + 1) up = v;
      if (code(v) == zp - 1) down = v;
    }
    const float scale = up >= 0 ? table[up] : -table[down];
    // (normal values only: a worker thread's denormal modes cannot change them)
    bool same = std::isnormal(scale);
    for (int v = 0; v < 256 && same; ++v) {
      const float f = float(code(v) - zp) * scale;
      same = std::memcmp(&f, &table[v], sizeof f) == 0 && (f == 0.0f || std::isnormal(f));
    }
    if (same) return AffineTable{true, is_signed, zp, scale};
  }
  return AffineTable{};
}

void run_lookup8_f32(const uint8_t* x, const float* table, const AffineTable& form, float* y,
                     int64_t n, int threads) {
  const int32_t zp = form.zero_point;
  const float scale = form.scale;
  run_elementwise(n, kBlock, threads, [&](int64_t i0, int64_t len) {
    if (!form.affine) {
      for (int64_t i = i0; i < i0 + len; ++i) y[i] = table[x[i]];
    } else if (form.is_signed) {
      const int8_t* s = reinterpret_cast<const int8_t*>(x);
      for (int64_t i = i0; i < i0 + len; ++i) y[i] = float(int32_t(s[i]) - zp) * scale;
    } else {
      for (int64_t i = i0; i < i0 + len; ++i) y[i] = float(int32_t(x[i]) - zp) * scale;
    }
  });
}

namespace {

// Where an input's values for output elements [e0, e0 + m) are: read in place (a contiguous
// input: stride 1), as one value (stride 0), or gathered into `buf` (any other strides).
enum InputForm { kInPlace, kOneValue, kGathered };

InputForm input_form(const FusedInput& in, const int64_t* dims) {
  bool zero = true, contiguous = true;
  int64_t expect = 1;
  for (int i = 3; i >= 0; --i) {
    if (dims[i] == 1) continue;
    zero = zero && in.st[i] == 0;
    contiguous = contiguous && in.st[i] == expect;
    expect *= dims[i];
  }
  return zero ? kOneValue : contiguous ? kInPlace : kGathered;
}

// A gathered input whose values depend on the innermost index only (a per-channel constant
// along the last axis of channels-last data): its block for elements [e0, e0 + m) is the
// same for every e0 of the same e0 % dims[3], so it is gathered once per run of such blocks.
bool periodic(const FusedInput& in, const int64_t* dims) {
  for (int i = 0; i < 3; ++i)
    if (dims[i] != 1 && in.st[i] != 0) return false;
  return true;
}

void gather(const FusedInput& in, const int64_t* dims, int64_t e0, int64_t m, float* buf) {
  const int64_t d1 = dims[1], d2 = dims[2], n = dims[3];
  for (int64_t e = e0; e < e0 + m;) {
    const int64_t r = e / n, c = e % n, len = std::min(n - c, e0 + m - e);
    const int64_t i2 = r % d2, i1 = (r / d2) % d1, i0 = r / (d2 * d1);
    const float* p = in.p + i0 * in.st[0] + i1 * in.st[1] + i2 * in.st[2] + c * in.st[3];
    float* out = buf + (e - e0);
    if (in.st[3] == 1) std::memcpy(out, p, size_t(len) * sizeof(float));
    // one value per row (LayerNorm's mean and scale over the last axis): filled, as the
    // compiler does not vectorize the strided copy with a stride it does not know is 0
    else if (in.st[3] == 0 || n == 1) std::fill(out, out + len, *p);
    else for (int64_t i = 0; i < len; ++i) out[i] = p[i * in.st[3]];
    e += len;
  }
}

struct Run {
  int64_t length = 1;
  bool a_one = false, b_one = false;
};

}  // namespace

void run_float_fused(const FloatFusedArgs& f, int threads) {
  const int64_t total = f.dims[0] * f.dims[1] * f.dims[2] * f.dims[3];
  if (total <= 0 || f.count <= 0) return;
  const FloatKernels& kernels = active_float_kernels();
  std::vector<InputForm> forms(size_t(f.n_inputs));
  std::vector<char> repeats(size_t(f.n_inputs));
  int gathered = 0;
  for (int i = 0; i < f.n_inputs; ++i) {
    forms[size_t(i)] = input_form(f.inputs[i], f.dims);
    gathered += forms[size_t(i)] == kGathered;
    repeats[size_t(i)] = forms[size_t(i)] == kGathered && periodic(f.inputs[i], f.dims);
  }
  // each Add, Sub, Mul and Div's broadcast run (ONNX Runtime's: the trailing axes over
  // which each operand stays whole or one value; registers hold whole results)
  std::vector<Run> runs(size_t(f.count));
  bool two_nan_steps = false;
  for (int k = 0; k < f.count; ++k) {
    const FusedInstr& ins = f.code[k];
    if (ins.op > kFloatDiv) continue;
    two_nan_steps = true;
    auto zero = [&](int r, int axis) { return r < 0 && f.inputs[-1 - r].st[axis] == 0; };
    Run& run = runs[size_t(k)];
    bool seen = false;
    for (int axis = 3; axis >= 0; --axis) {
      if (f.dims[axis] == 1) continue;
      const bool za = zero(ins.a, axis), zb = zero(ins.b, axis);
      if (seen && (za != run.a_one || zb != run.b_one)) break;
      seen = true, run.a_one = za, run.b_one = zb, run.length *= f.dims[axis];
    }
    if (!seen) run.a_one = true;  // one element: ONNX Runtime's input 0 one value
    if (run.a_one) run.b_one = false;
  }
  run_elementwise(total, kBlock, threads, [&](int64_t e0, int64_t len) {
    // registers, then one block per gathered input
    std::vector<float> scratch(size_t(f.registers + gathered) * kFusedBlock);
    std::vector<float> held(two_nan_steps ? size_t(kFusedBlock) : 0);
    std::vector<const float*> src(size_t(f.n_inputs));
    std::vector<int64_t> stride(size_t(f.n_inputs));
    // of a periodic input: the e0 % dims[3] its block was last gathered for (blocks only
    // shrink, at the end, so the slot holds every value a later block of that phase reads)
    std::vector<int64_t> phase(size_t(f.n_inputs), -1);
    for (int64_t b = e0; b < e0 + len; b += kFusedBlock) {
      const int64_t m = std::min(kFusedBlock, e0 + len - b);
      float* slot = scratch.data() + size_t(f.registers) * kFusedBlock;
      for (int i = 0; i < f.n_inputs; ++i) {
        const FusedInput& in = f.inputs[i];
        switch (forms[size_t(i)]) {
          case kInPlace: src[size_t(i)] = in.p + b, stride[size_t(i)] = 1; break;
          case kOneValue: src[size_t(i)] = in.p, stride[size_t(i)] = 0; break;
          default:
            if (!repeats[size_t(i)] || phase[size_t(i)] != b % f.dims[3]) {
              gather(in, f.dims, b, m, slot);
              if (repeats[size_t(i)]) phase[size_t(i)] = b % f.dims[3];
            }
            src[size_t(i)] = slot, stride[size_t(i)] = 1;
            slot += kFusedBlock;
        }
      }
      auto operand = [&](int r, int64_t& s) -> const float* {
        if (r >= 0) {
          s = 1;
          return scratch.data() + size_t(r) * kFusedBlock;
        }
        s = stride[size_t(-1 - r)];
        return src[size_t(-1 - r)];
      };
      // (careful: each Add, Sub, Mul and Div into `held`, then ONNX Runtime's NaN of two NaNs
      // put in, (O116); only for a block whose result holds a NaN, which every such NaN
      // of a step reaches through the operators chains take)
      auto evaluate = [&](bool careful) {
        bool maybe = false;  // whether an Add, Sub, Mul or Div may have given a NaN
        for (int k = 0; k < f.count; ++k) {
          const FusedInstr& ins = f.code[k];
          float* d = ins.dst < 0 ? f.y + b : scratch.data() + size_t(ins.dst) * kFusedBlock;
          int64_t sa = 1, sb = 1;
          const float* a = operand(ins.a, sa);
          if (ins.op < kFloatBinaryCount) {
            const float* bb = operand(ins.b, sb);
            if (careful && ins.op <= kFloatDiv) {
              const Run& run = runs[size_t(k)];
              kernels.binary_row(ins.op, a, sa, bb, sb, held.data(), m);
              two_nans(ins.op, a, sa, bb, sb, held.data(), b, m, run.length, total, threads,
                       run.a_one, run.b_one, f.places);
              std::copy(held.begin(), held.begin() + m, d);
            } else {
              maybe |= kernels.binary_row(ins.op, a, sa, bb, sb, d, m) && ins.op <= kFloatDiv;
            }
            continue;
          }
          if (sa == 0) {  // one value: as many copies as the block holds
            std::fill(d, d + m, *a);
            a = d;
          }
          if (ins.op == kFusedRelu) {
            for (int64_t i = 0; i < m; ++i) {  // run_float_clamp with lo = 0 only
              const float v = a[i];
              d[i] = !(v <= 0.0f) ? v : 0.0f;  // (v > 0 or NaN: branch-free)
            }
          } else if (ins.op == kFusedSqrt) {
            for (int64_t i = 0; i < m; ++i) d[i] = std::sqrt(a[i]);
          } else {
            kernels.unary(ins.op - kFusedUnary, a, d, m, 0.0f, 0.0f);
          }
        }
        return maybe;
      };
      if (evaluate(false) && any_nan(f.y + b, m)) evaluate(true);
    }
  });
}

}  // namespace lowp
