// Row kernels of the small ai.onnx.ml operators, as lowp.runtime.ml_ops computes them (its
// numpy is the reference): LinearClassifier's label of each row (its first largest score),
// Normalizer's L1 and MAX of float32 rows, ZipMap's scores in the order of its keys; with
// their Python bindings (also Program methods, so that a replayed run repeats them). And
// ZipMap's sequence of maps built from those scores (`zipmap_dicts`: Python objects, made
// after the run, as ONNX Runtime's Python binding makes them from its std::maps).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>

#include "bind_kernel.h"
#include "program.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace lowp {

// label[r] = labels[the first c of scores' row r with the largest score], as ONNX Runtime's
// `if (score > maxweight)` loop from column 0 picks it (a NaN never taken past the first
// column, a NaN first never left): ml_ops._first_largest
void first_largest_labels(const float* scores, int64_t rows, int64_t classes,
                          const int64_t* labels, int64_t* label) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = scores + r * classes;
    int64_t best = 0;
    float top = s[0];
    for (int64_t c = 1; c < classes; ++c)
      if (s[c] > top) best = c, top = s[c];
    label[r] = labels[best];
  }
}

// ml_ops.Normalizer of float32 rows: MAX (norm 0) each value over the row's std::max from the
// lowest float32, L1 (norm 1) over the float32 sum of |x| in order; a row whose divisor is 0
// as it is
void normalize_rows(const float* x, int64_t rows, int64_t width, int norm, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
    float* yr = y + r * width;
    float total = 0.0f;
    if (norm == 0) {
      total = std::numeric_limits<float>::lowest();
      for (int64_t j = 0; j < width; ++j) total = total < xr[j] ? xr[j] : total;
    } else {
      for (int64_t j = 0; j < width; ++j) total = total + std::fabs(xr[j]);
    }
    for (int64_t j = 0; j < width; ++j) yr[j] = total != 0.0f ? xr[j] / total : xr[j];
  }
}

// ZipMap's scores in the order of its keys (ml_ops.ZipMap with scores_only): y[r][j] =
// x[r][columns[j]] for rows of `width` scores and `count` keys
void zipmap_scores(const float* x, int64_t rows, int64_t width, const int64_t* columns,
                   int64_t count, float* y) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < count; ++j) y[r * count + j] = x[r * width + columns[j]];
}

}  // namespace lowp

namespace {

using F32In = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;
using F32Out = nb::ndarray<float, nb::c_contig, nb::device::cpu>;
using I64In = nb::ndarray<const int64_t, nb::c_contig, nb::device::cpu>;
using I64Out = nb::ndarray<int64_t, nb::c_contig, nb::device::cpu>;

lowp::Kernel make_labels(F32In scores, int64_t rows, int64_t classes, I64In labels,
                         I64Out label) {
  if (rows < 0 || classes < 1 || scores.size() != size_t(rows * classes) ||
      labels.size() < size_t(classes) || label.size() != size_t(rows))
    throw std::invalid_argument("first_largest_labels: arrays are not rows x classes");
  return [=] { lowp::first_largest_labels(scores.data(), rows, classes, labels.data(),
                                          label.data()); };
}

lowp::Kernel make_normalize(F32In x, int64_t rows, int64_t width, int norm, F32Out y) {
  if (rows < 0 || width < 0 || x.size() != size_t(rows * width) || y.size() != x.size() ||
      (norm != 0 && norm != 1))
    throw std::invalid_argument("normalize_rows: arrays are not rows x width, or norm unknown");
  return [=] { lowp::normalize_rows(x.data(), rows, width, norm, y.data()); };
}

lowp::Kernel make_zipmap_scores(F32In x, int64_t rows, int64_t width, I64In columns,
                                F32Out y) {
  const int64_t count = int64_t(columns.size());
  bool ok = rows >= 0 && width >= 0 && x.size() == size_t(rows * width) &&
            y.size() == size_t(rows * count);
  for (int64_t j = 0; ok && j < count; ++j) ok = columns.data()[j] >= 0 && columns.data()[j] < width;
  if (!ok)
    throw std::invalid_argument("zipmap_scores: arrays are not rows x width and rows x keys, "
                                "or a column is outside the row");
  return [=] { lowp::zipmap_scores(x.data(), rows, width, columns.data(), count, y.data()); };
}

// One dict a row of `scores` (rows x keys): keys[j] -> the score as a Python float (the
// float32 value exactly, a NaN's payload kept as the conversion to double keeps it), keys
// in the list's order (ascending: ONNX Runtime's std::map order).
nb::list zipmap_dicts(F32In scores, int64_t rows, nb::list keys) {
  const size_t count = nb::len(keys);
  if (rows < 0 || scores.size() != size_t(rows) * count)
    throw std::invalid_argument("zipmap_dicts: the scores are not rows x keys");
  nb::list out = nb::steal<nb::list>(PyList_New(Py_ssize_t(rows)));
  const float* s = scores.data();
  for (int64_t r = 0; r < rows; ++r) {
    nb::dict row;
    for (size_t j = 0; j < count; ++j) {
      nb::object v = nb::steal(PyFloat_FromDouble(double(s[size_t(r) * count + j])));
      if (!v.is_valid() || PyDict_SetItem(row.ptr(), PyList_GET_ITEM(keys.ptr(), j), v.ptr()))
        throw nb::python_error();
    }
    PyList_SET_ITEM(out.ptr(), Py_ssize_t(r), row.release().ptr());
  }
  return out;
}

}  // namespace

void bind_ml_rows(nb::module_& m, nb::class_<lowp::Program>& program) {
  lowp::def_kernel(m, program, "first_largest_labels", &make_labels, "scores"_a, "rows"_a,
                   "classes"_a, "labels"_a, "label"_a);
  lowp::def_kernel(m, program, "normalize_rows", &make_normalize, "x"_a, "rows"_a, "width"_a,
                   "norm"_a, "y"_a);
  lowp::def_kernel(m, program, "zipmap_scores", &make_zipmap_scores, "x"_a, "rows"_a,
                   "width"_a, "columns"_a, "y"_a);
  m.def("zipmap_dicts", &zipmap_dicts, "scores"_a, "rows"_a, "keys"_a);
}
