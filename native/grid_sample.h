// GridSample of float32 4-D inputs in ONNX Runtime's order (grid_sample.cc), bit for bit with
// lowp.runtime.float_detection.GridSample, its numpy reference (docs/operators.md (O246),
// (O247), (O314)): modes linear and nearest, zeros and border padding (reflection and cubic
// stay numpy). Per batch image a sample plan (each output point's input offsets and
// weights), then every channel's points from it; channels split over the threads.
#pragma once

#include <cstdint>

namespace lowp {

struct GridSampleArgs {
  const float* x = nullptr;      // (n, c, h, w)
  const float* grid = nullptr;   // (n, points, 2): x then y, normalized to [-1, 1]
  float* y = nullptr;            // (n, c, points)
  int64_t n = 0, c = 0, h = 0, w = 0, points = 0;
  bool nearest = false;          // else linear
  bool border = false;           // else zeros
  bool align_corners = false;
};

// false (y partly written) when a position is NaN, infinite or beyond 2**62: the reference
// refuses those grids with its NodeError. threads <= 0: all.
bool run_grid_sample(const GridSampleArgs& a, int threads);

}  // namespace lowp
