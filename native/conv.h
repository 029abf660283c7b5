// Driver layer: a prepacked quantized convolution (and matmul, as a 1x1 convolution) in
// channels-last layout. Packing lives in pack.cpp, execution in driver.cpp.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "common.h"

namespace lowp {

struct ConvParams {
  int kd = 1, kh = 1, kw = 1;
  int sd = 1, sh = 1, sw = 1;
  int dd = 1, dh = 1, dw = 1;
  int pd0 = 0, ph0 = 0, pw0 = 0, pd1 = 0, ph1 = 0, pw1 = 0;
  int groups = 1, cin = 1, cout = 1;
  bool x_signed = false, w_signed = true;
  int32_t x_zp = 0;
  int32_t out_zp = 0, qmin = 0, qmax = 255;
  bool fixedpoint = false;
  int threads = 0;            // 0: all hardware threads
  bool allow_depthwise = true;
};

struct OutDims {
  int64_t d, h, w;
};

// A ConvOp's GEMM weight panels (layout in docs/native.md), immutable once made. ConvOps
// whose panels are equal byte for byte, with the same layout, share one copy (pack.cpp,
// share_panels): an unrolled recurrence's time steps read one weight, as ONNX Runtime's
// nodes do, instead of one packed copy per step.
struct Panels {
  std::vector<int8_t> data;          // the panels from data.data() + off0: 64-byte aligned, so
  int64_t off0 = 0;                  // that vector loads of a panel never split cache lines
  int64_t bytes = 0;                 // from off0
  std::vector<int64_t> off;          // [group][panel] -> offset from off0
  int groups = 0, npanels = 0, mg = 0, k4 = 0;  // the layout (what pack_panel is given)
  const int8_t* panel(int64_t i) const { return data.data() + off0 + off[i]; }
  // The panels in a path's own layout (IsaTable::pack_panel), one copy per path, made on
  // that path's first call and kept (so a call on one path never frees another's copy).
  struct Own {
    const IsaTable* isa = nullptr;
    std::vector<int8_t> data;
    int64_t off0 = 0;
    std::vector<int64_t> off;
    const int8_t* panel(int64_t i) const { return data.data() + off0 + off[i]; }
  };
  const Own& own(const IsaTable& isa);

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Own>> own_;
};

// Distinct GEMM weight panels alive in the process (tests: equal weights are packed once).
int64_t live_panels();

class ConvOp {
 public:
  // w: ONNX layout (cout, cin/groups, kd, kh, kw), bytes of int8 or uint8 values.
  // w_zp, bias (may be null), scale, mult, lshift, rshift: one value per output channel.
  ConvOp(const ConvParams& p, const uint8_t* w, const int32_t* w_zp, const int32_t* bias,
         const float* scale, const int32_t* mult, const int32_t* lshift, const int32_t* rshift);

  OutDims out_dims(int64_t d, int64_t h, int64_t w) const;
  // x: (n, d, h, w, cin) channels-last bytes; y: (n, od, oh, ow, cout).
  void run(const uint8_t* x, int64_t n, int64_t d, int64_t h, int64_t w, uint8_t* y);

  bool depthwise() const { return depthwise_; }
  // identity of the GEMM panels (equal for ConvOps that share them); 0 for depthwise kernels
  uintptr_t panels_id() const { return reinterpret_cast<uintptr_t>(panels_.get()); }
  int threads() const { return p_.threads; }
  void set_threads(int t) {
    p_.threads = t;
    if (by_width_) by_width_->set_threads(t);
  }

 private:
  void run_gemm(const IsaTable& isa, const uint8_t* x, int64_t n, int64_t d, int64_t h,
                int64_t w, uint8_t* y, int nthreads);
  void run_depthwise(const IsaTable& isa, const uint8_t* x, int64_t n, int64_t d, int64_t h,
                     int64_t w, uint8_t* y, int nthreads);
  void run_depthwise_quads(const IsaTable& isa, const uint8_t* x, int64_t n, int64_t d,
                           int64_t h, int64_t w, uint8_t* y, int nthreads);
  void pack_depthwise_quads(const uint8_t* w);

  ConvParams p_;
  int cg_, mg_, taps_, cgp_, kc4_, npanels_;
  // GEMM taps: taps_, or kd*kh when a whole kernel row is one tap (rowtaps_: groups == 1,
  // unit width dilation, C % 4 != 0; the kw*C bytes of a kernel row are contiguous in the
  // unpadded-channel input, so K pads kw*C to a multiple of 4 instead of each C)
  int gtaps_ = 0, tapk_ = 0;  // taps of the GEMM, real bytes per GEMM tap
  bool rowtaps_ = false;
  int32_t za_;                       // activation zero point in the uint8 (shifted) domain
  bool need_rowsum_ = false, depthwise_ = false;
  std::shared_ptr<Panels> panels_;   // GEMM panels, shared with ConvOps of equal panels
  std::vector<int32_t> bias_, zw_, mult_, lshift_, rshift_, dw_bias_, dw_w_;
  std::vector<float> scale_;
  Epilogue epi_, dw_epi_;
  std::vector<uint8_t> xpad_;        // scratch reused across calls
  std::vector<std::vector<int32_t>> dw_cache_;
  // Quad depthwise kernel (3x3, width stride 1 or 2, width dilation 1, no weight zero-point
  // term): packed weights from dwq0_, epilogue arrays in block order (dw_quad_block).
  bool dwq_ = false;
  std::vector<int8_t> dwq_w_;
  int64_t dwq0_ = 0;
  std::vector<int32_t> dwq_bias_, dwq_mult_, dwq_lshift_, dwq_rshift_;
  std::vector<float> dwq_scale_;
  Epilogue dwq_epi_;
  std::vector<uint8_t> dwq_pad_;     // one input row of zero-point bytes (padding rows)
  // A depthwise kernel of one column (kh x 1, no width padding) on an input one pixel wide
  // (a 1-D convolution along the height, fsmn_vad's 20 x 1 memory blocks): the same
  // convolution with height and width exchanged, whose pair kernel takes the kernel's taps
  // two by two along one row of outputs, where this op's gets one tap and a zero per pair
  // and one output per row. The data's memory is the same both ways.
  std::unique_ptr<ConvOp> by_width_;
  std::mutex mu_;
};

}  // namespace lowp
