// NonMaxSuppression of float32 boxes in ONNX Runtime's order (non_max_suppression.cc,
// nms_helpers.h), bit for bit with lowp.runtime.float_detection.NonMaxSuppression, its
// numpy reference (docs/operators.md (O242), (O243), (O313)). Driver (nms.cpp): per
// (batch, class) the candidates in a binary heap that replays libstdc++'s make_heap /
// pop_heap (the order std::priority_queue pops them, NaN scores included), each popped box
// kept unless it overlaps a kept one, until `limit` are kept; the (batch, class) pairs run
// on the thread pool and their rows are joined in order. Microkernel (nms_kernel.cpp, one
// copy per instruction set): does a candidate overlap any of the kept boxes.
#pragma once

#include <cstdint>

namespace lowp {

// One box's corners as SuppressByIOU forms them and its area (x_max - x_min) * (y_max -
// y_min), float32.
struct NmsBox {
  float x_min, x_max, y_min, y_max, area;
};

// Boxes side by side (structure of arrays), `count` of them.
struct NmsBoxes {
  const float* x_min;
  const float* x_max;
  const float* y_min;
  const float* y_max;
  const float* area;
};

// Whether candidate c overlaps one of kept boxes 0 .. n - 1 by more than iou_threshold:
// nms_helpers::SuppressByIOU(candidate, kept) for each, the intersection's corners by
// std::max / std::min with the candidate first, its early `return false` tests written
// negated (NaN passes them), then intersection / union > iou_threshold. The answer does
// not depend on the order the kept boxes are looked at, so vector paths test them in
// blocks. The candidate's own test, !(c.area <= 0), is the
// caller's.
using NmsOverlapFn = bool (*)(const NmsBox& c, const NmsBoxes& kept, int64_t n,
                              float iou_threshold);
bool nms_overlap_scalar(const NmsBox&, const NmsBoxes&, int64_t, float);   // no ISA flags
bool nms_overlap_avx2(const NmsBox&, const NmsBoxes&, int64_t, float);     // -mavx2
bool nms_overlap_avx512(const NmsBox&, const NmsBoxes&, int64_t, float);   // -mavx512f

struct NmsArgs {
  const float* boxes = nullptr;    // (batches, n, 4)
  const float* scores = nullptr;   // (batches, classes, n)
  int64_t batches = 0, classes = 0, n = 0;
  int64_t limit = 0;               // max_output_boxes_per_class, >= 1
  float iou_threshold = 0.0f;
  bool has_score_threshold = false;
  float score_threshold = 0.0f;    // candidates: score > score_threshold
  bool center_point_box = false;   // boxes (x_c, y_c, w, h) rather than (y1, x1, y2, x2)
  // batches * classes * min(limit, n) rows of (batch, class, box); the first `returned`
  // hold the result, batch by batch, class by class, each class in the order kept
  int64_t* out = nullptr;
};

// The selected rows into a.out; returns their count. threads <= 0: all.
int64_t run_nms(const NmsArgs& a, int threads);

}  // namespace lowp
