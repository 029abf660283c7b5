// Python bindings of the detection operators: `non_max_suppression` (nms.h) returns the
// number of rows it wrote, `grid_sample` (grid_sample.h) whether the grid was usable,
// `roi_align` (roi_align.h) whether the rois were; each checks the sizes, then runs with
// the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>

#include <algorithm>
#include <optional>
#include <stdexcept>

#include "grid_sample.h"
#include "nms.h"
#include "roi_align.h"

namespace nb = nanobind;
using namespace nb::literals;

void bind_detection(nb::module_& m) {
  using Floats = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
  using OutFloats = nb::ndarray<float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
  using OutRows = nb::ndarray<int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
  m.def(
      "non_max_suppression",
      [](Floats boxes, Floats scores, OutRows out, int64_t batches, int64_t classes,
         int64_t n, int64_t limit, float iou_threshold, std::optional<float> score_threshold,
         bool center_point_box, int threads) {
        if (batches < 0 || classes < 0 || n < 0 || limit < 1 ||
            boxes.size() != size_t(batches * n * 4) ||
            scores.size() != size_t(batches * classes * n) ||
            out.size() != size_t(batches * classes * std::min(limit, n) * 3))
          throw std::invalid_argument(
              "non_max_suppression needs boxes (batches, n, 4), scores (batches, classes, n), "
              "limit >= 1 and out of batches * classes * min(limit, n) * 3 values");
        lowp::NmsArgs a;
        a.boxes = boxes.data(), a.scores = scores.data(), a.out = out.data();
        a.batches = batches, a.classes = classes, a.n = n, a.limit = limit;
        a.iou_threshold = iou_threshold;
        a.has_score_threshold = score_threshold.has_value();
        a.score_threshold = score_threshold.value_or(0.0f);
        a.center_point_box = center_point_box;
        nb::gil_scoped_release nogil;
        return lowp::run_nms(a, threads);
      },
      "boxes"_a, "scores"_a, "out"_a, "batches"_a, "classes"_a, "n"_a, "limit"_a,
      "iou_threshold"_a, "score_threshold"_a.none(), "center_point_box"_a, "threads"_a = 1);
  m.def(
      "grid_sample",
      [](Floats x, Floats grid, OutFloats y, int64_t n, int64_t c, int64_t h, int64_t w,
         int64_t points, bool nearest, bool border, bool align_corners, int threads) {
        if (n < 0 || c < 0 || h < 1 || w < 1 || points < 0 ||
            x.size() != size_t(n * c * h * w) || grid.size() != size_t(n * points * 2) ||
            y.size() != size_t(n * c * points))
          throw std::invalid_argument(
              "grid_sample needs x (n, c, h, w), grid (n, points, 2) and y (n, c, points)");
        lowp::GridSampleArgs a;
        a.x = x.data(), a.grid = grid.data(), a.y = y.data();
        a.n = n, a.c = c, a.h = h, a.w = w, a.points = points;
        a.nearest = nearest, a.border = border, a.align_corners = align_corners;
        nb::gil_scoped_release nogil;
        return lowp::run_grid_sample(a, threads);
      },
      "x"_a, "grid"_a, "y"_a, "n"_a, "c"_a, "h"_a, "w"_a, "points"_a, "nearest"_a, "border"_a,
      "align_corners"_a, "threads"_a = 1);
  using Indices = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
  m.def(
      "roi_align",
      [](Floats x, Floats rois, Indices batch, OutFloats y, int64_t n, int64_t c, int64_t h,
         int64_t w, int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio,
         float spatial_scale, bool half_pixel, bool max_mode, int threads) {
        const int64_t r = int64_t(batch.size());
        if (n < 1 || c < 0 || h < 1 || w < 1 || pooled_h < 1 || pooled_w < 1 ||
            sampling_ratio < 0 || x.size() != size_t(n * c * h * w) ||
            rois.size() != size_t(r * 4) || y.size() != size_t(r * c * pooled_h * pooled_w))
          throw std::invalid_argument(
              "roi_align needs x (n, c, h, w), rois (r, 4), batch (r,) and y (r, c, "
              "pooled_h, pooled_w)");
        for (int64_t i = 0; i < r; ++i)
          if (batch.data()[i] < 0 || batch.data()[i] >= n)
            throw std::invalid_argument("roi_align: a batch index is out of range");
        lowp::RoiAlignArgs a;
        a.x = x.data(), a.rois = rois.data(), a.batch = batch.data(), a.y = y.data();
        a.n = n, a.c = c, a.h = h, a.w = w, a.num_rois = r;
        a.pooled_h = pooled_h, a.pooled_w = pooled_w, a.sampling_ratio = sampling_ratio;
        a.spatial_scale = spatial_scale, a.half_pixel = half_pixel, a.max_mode = max_mode;
        nb::gil_scoped_release nogil;
        return lowp::run_roi_align(a, threads);
      },
      "x"_a, "rois"_a, "batch"_a, "y"_a, "n"_a, "c"_a, "h"_a, "w"_a, "pooled_h"_a,
      "pooled_w"_a, "sampling_ratio"_a, "spatial_scale"_a, "half_pixel"_a, "max_mode"_a,
      "threads"_a = 1);
}
