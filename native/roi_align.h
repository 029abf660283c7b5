// RoiAlign of float32 inputs in ONNX Runtime's order (roialign.cc), bit for bit with
// lowp.runtime.float_detection.RoiAlign, its numpy reference (docs/operators.md (O244),
// (O245)): per roi its bins' sample positions and weights along each axis, then every
// channel's bins, averaged or the maximum of the weighted corners; rois split over the
// threads.
#pragma once

#include <cstdint>

namespace lowp {

struct RoiAlignArgs {
  const float* x = nullptr;              // (n, c, h, w)
  const float* rois = nullptr;           // (num_rois, 4): x1, y1, x2, y2, finite
  const int64_t* batch = nullptr;        // (num_rois,), each in [0, n)
  float* y = nullptr;                    // (num_rois, c, pooled_h, pooled_w)
  int64_t n = 0, c = 0, h = 0, w = 0, num_rois = 0, pooled_h = 1, pooled_w = 1;
  int64_t sampling_ratio = 0;            // 0: ceil(extent / pooled) samples a bin
  float spatial_scale = 1.0f;
  bool half_pixel = true;                // else output_half_pixel
  bool max_mode = false;                 // else avg
};

// false (y untouched) when a roi's sample grid is negative on one axis only: the
// reference's NodeError. threads <= 0: all.
bool run_roi_align(const RoiAlignArgs& a, int threads);

}  // namespace lowp
