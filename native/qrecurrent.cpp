// Driver of the quantized LSTM recurrence (qrecurrent.h): the dynamic uint8 quantization of
// each product's float operand, the integer product's zero-point terms and float scaling,
// the time loop with sequence-length masking, and directions as tasks on the thread pool.
// Mirrors lowp.runtime.quantized_lstm (docs/operators.md (O23q)) operation for operation.
#include "qrecurrent.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "dispatch.h"
#include "qrecurrent_scale.h"
#include "recurrent.h"
#include "threadpool.h"

namespace lowp {

namespace {

// The portable integer product: the same sums as the VNNI kernel, one lane at a time.
void qgemm_portable(int m, int n, int k4, const uint8_t* a, int64_t lda, const int8_t* b,
                    int32_t* acc, int64_t ldc) {
  const int64_t panel = int64_t(k4) * 4 * kQPanel;
  for (int i = 0; i < m; ++i)
    for (int j0 = 0; j0 < n; j0 += kQPanel) {
      uint32_t sum[kQPanel] = {};
      const int8_t* bp = b + int64_t(j0 / kQPanel) * panel;
      for (int kk = 0; kk < k4; ++kk) {
        const uint8_t* ak = a + i * lda + kk * 4;
        const int8_t* bk = bp + kk * 4 * kQPanel;
        for (int j = 0; j < kQPanel; ++j)
          for (int q = 0; q < 4; ++q)
            sum[j] += uint32_t(int32_t(ak[q]) * int32_t(bk[j * 4 + q]));
      }
      for (int j = 0; j < kQPanel; ++j) acc[i * ldc + j0 + j] = int32_t(sum[j]);
    }
}

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// A quantized operand: rows of 4 * k4 uint8 (zero-padded), each row's sum, and its
// (scale, zero point).
struct QOperand {
  std::vector<uint8_t> q;
  std::vector<int32_t> rowsum;
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// ONNX Runtime's GetQuantizationParameter and MLAS's QuantizeLinear on `rows` rows of `cols`
// floats (lowp.runtime.quantized_lstm.dynamic_qparams / quantize_uint8): the range [min(0,
// min), max(0, max)], scale (hi - lo) / 255 (1 when hi == lo), zero point round-half-even(
// clamp(0 - lo / scale, 0, 255)); q = round-half-even(clamp(a / scale, -zp, 255 - zp)) + zp,
// all in float32. The caller keeps the inputs finite.
void quantize(const float* src, int64_t rows, int64_t cols, int64_t ld, int64_t lda,
              QOperand& o) {
  float lo = 0.0f, hi = 0.0f;
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * ld;
    float rlo = lo, rhi = hi;
    for (int64_t j = 0; j < cols; ++j) {
      rlo = s[j] < rlo ? s[j] : rlo;
      rhi = s[j] > rhi ? s[j] : rhi;
    }
    lo = rlo, hi = rhi;
  }
  const float scale = hi == lo ? 1.0f : (hi - lo) / 255.0f;
  float zpf = 0.0f - lo / scale;
  zpf = std::nearbyint(std::min(std::max(zpf, 0.0f), 255.0f));
  const int32_t zp = int32_t(zpf);
  const float qlo = float(-zp), qhi = float(255 - zp);
  // |v| <= 255: adding and removing 1.5 * 2^23 rounds half to even
  constexpr float kMagic = 12582912.0f;
  o.scale = scale, o.zero_point = zp;
  o.rowsum.assign(size_t(rows), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * ld;
    uint8_t* d = o.q.data() + r * lda;
    int32_t sum = 0;
    for (int64_t j = 0; j < cols; ++j) {
      float v = s[j] / scale;
      v = v < qlo ? qlo : v;
      v = v > qhi ? qhi : v;
      const int32_t q = int32_t((v + kMagic) - kMagic) + zp;
      d[j] = uint8_t(q);
      sum += q;
    }
    o.rowsum[size_t(r)] = sum;
  }
}

// out (rows x n) = float32(acc) * float32(s_a * s_w[n]), plus out when `add` (a product,
// then a sum: no fused multiply-add), acc = Σ (a - z_a)(b - d) from the raw sums Σ a b:
//   Σ a b - d Σ a - z_a Σ b + K z_a d   (modulo 2^32, as the int32 accumulator).
void scale_out(const QRnnKernels& k, const QOperand& a, int64_t rows, int64_t kdim,
               const QWeight& w, int64_t n, const int32_t* acc, float* out, int64_t ldo,
               bool add, std::vector<float>& mult, std::vector<uint32_t>& base) {
  mult.resize(size_t(n));
  for (int64_t j = 0; j < n; ++j) mult[size_t(j)] = a.scale * w.scale[j];
  const uint32_t za = uint32_t(a.zero_point), d = uint32_t(w.d);
  base.resize(size_t(rows));
  for (int64_t r = 0; r < rows; ++r)
    base[size_t(r)] = uint32_t(kdim) * za * d - d * uint32_t(a.rowsum[size_t(r)]);
  k.scale(rows, n, acc, base.data(), za, w.colsum, mult.data(), out, ldo, add);
}

void run_direction(const QLstmArgs& a, int64_t d, const QRnnKernels& q, const RnnKernels& k) {
  const int64_t T = a.t, B = a.b, H = a.h, I = a.i;
  const int64_t hp = round_up(H, kRnnAlign), n = 4 * hp;
  const bool rev = a.reverse[d];
  std::vector<int64_t> len(static_cast<size_t>(B));
  int64_t tmax = 0;
  for (int64_t b = 0; b < B; ++b) {
    len[size_t(b)] = a.lens ? int64_t(a.lens[b]) : T;
    tmax = std::max(tmax, len[size_t(b)]);
  }
  // outputs start at zero: steps past an entry's length, and Y_h, Y_c of length 0
  for (int64_t t = 0; t < T; ++t) std::memset(a.y + (t * a.d + d) * B * H, 0, size_t(B * H) * 4);
  std::memset(a.yh + d * B * H, 0, size_t(B * H) * 4);
  std::memset(a.yc + d * B * H, 0, size_t(B * H) * 4);
  if (tmax == 0) return;
  std::vector<float> mult;
  std::vector<uint32_t> base;
  // X W for the first max(lens) steps, one product quantized over all its rows
  const int64_t rows_x = tmax * B, k4x = qrnn_k4(I);
  std::vector<float> xw(size_t(rows_x * n));
  {
    QOperand qx;
    qx.q.assign(size_t(rows_x * k4x * 4), 0);
    quantize(a.x, rows_x, I, I, k4x * 4, qx);
    std::vector<int32_t> acc(size_t(rows_x * n));
    q.gemm(int(rows_x), int(n), int(k4x), qx.q.data(), k4x * 4, a.w[d].b, acc.data(), n);
    scale_out(q, qx, rows_x, I, a.w[d], n, acc.data(), xw.data(), n, false, mult, base);
  }
  // state, bias Wb + Rb and peepholes, rows padded to hp with zeros
  std::vector<float> h(size_t(B * hp), 0.0f), c(size_t(B * hp), 0.0f), gates(size_t(B * n), 0.0f);
  for (int64_t b = 0; b < B; ++b) {
    if (a.h0) std::memcpy(&h[size_t(b * hp)], a.h0 + (d * B + b) * H, size_t(H) * 4);
    if (a.c0) std::memcpy(&c[size_t(b * hp)], a.c0 + (d * B + b) * H, size_t(H) * 4);
  }
  std::vector<float> bias, peep;
  if (a.bias) {
    bias.assign(size_t(n), 0.0f);
    const float* wb = a.bias + d * 8 * H;
    for (int64_t g = 0; g < 4; ++g)
      for (int64_t j = 0; j < H; ++j) bias[size_t(g * hp + j)] = wb[g * H + j] + wb[(4 + g) * H + j];
  }
  if (a.p) {
    peep.assign(size_t(3 * hp), 0.0f);
    for (int64_t g = 0; g < 3; ++g) std::memcpy(&peep[size_t(g * hp)], a.p + (d * 3 + g) * H, size_t(H) * 4);
  }
  const int64_t k4h = qrnn_k4(H), task = std::max<int64_t>(1, a.rows_per_task);
  QOperand qh;
  qh.q.assign(size_t(std::min(task, B) * k4h * 4), 0);
  std::vector<int32_t> acc(size_t(std::min(task, B) * n));
  LstmCell cell;
  cell.b = bias.empty() ? nullptr : bias.data();
  cell.p = peep.empty() ? nullptr : peep.data();
  cell.hp = int(hp);
  cell.clip = a.clip;
  cell.input_forget = a.input_forget;
  for (int64_t t = 0; t < tmax; ++t) {
    for (int64_t b = 0; b < B; ++b) {
      if (t >= len[size_t(b)]) continue;
      const int64_t src = rev ? len[size_t(b)] - 1 - t : t;
      std::memcpy(&gates[size_t(b * n)], &xw[size_t((src * B + b) * n)], size_t(n) * 4);
    }
    // H R per task of rows, each quantized from its own range
    for (int64_t s = 0; s < B; s += task) {
      const int64_t rows = std::min(task, B - s);
      quantize(&h[size_t(s * hp)], rows, H, hp, k4h * 4, qh);
      q.gemm(int(rows), int(n), int(k4h), qh.q.data(), k4h * 4, a.r[d].b, acc.data(), n);
      scale_out(q, qh, rows, H, a.r[d], n, acc.data(), &gates[size_t(s * n)], n, true, mult,
                base);
    }
    for (int64_t b = 0; b < B; ++b) {
      const int64_t L = len[size_t(b)];
      float* hb = &h[size_t(b * hp)];
      if (t >= L) {  // a finished entry feeds its output row (zeros) when the node writes Y
        if (a.with_y) std::memset(hb, 0, size_t(hp) * 4);
        continue;
      }
      cell.g = &gates[size_t(b * n)];
      cell.h = hb;
      cell.c = &c[size_t(b * hp)];
      k.lstm_cell(cell);
      const int64_t dst = rev ? L - 1 - t : t;
      std::memcpy(a.y + ((dst * a.d + d) * B + b) * H, hb, size_t(H) * 4);
      if (t + 1 == L) {
        std::memcpy(a.yh + (d * B + b) * H, hb, size_t(H) * 4);
        std::memcpy(a.yc + (d * B + b) * H, cell.c, size_t(H) * 4);
      }
    }
  }
}

}  // namespace

const QRnnKernels kQRnnPortable = {"portable", &qgemm_portable, &qrnn_scale};

const QRnnKernels& active_qrnn_kernels() {
  const std::string name = active_table()->name;
  if (name == "scalar") return kQRnnPortable;
  if (name == "avx512vnni" || name == "amx") return kQRnnAvx512Vnni;
  return kQRnnAvx2;  // avx2, avxvnni, avxvnni_evex
}

void run_qlstm(const QLstmArgs& a, int threads) {
  const QRnnKernels& q = active_qrnn_kernels();
  const RnnKernels& k = active_rnn_kernels();
  if (threads < 1) threads = ThreadPool::max_threads();
  // Directions are independent: one task each, every one computed the same way on any thread.
  if (threads > 1 && a.d > 1) {
    ThreadPool::instance().run(int(a.d), [&](int d) { run_direction(a, d, q, k); });
  } else {
    for (int64_t d = 0; d < a.d; ++d) run_direction(a, d, q, k);
  }
}

}  // namespace lowp
