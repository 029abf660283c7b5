// Python bindings of the tree ensembles (tree_ensemble.h): `tree_forest` builds a forest from
// the arrays of lowp.runtime.ml_trees.Forest, `tree_ensemble_scores` runs it on rows (also a
// Program method of the same arguments that appends the run, lowp.runtime.program).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <memory>
#include <stdexcept>
#include <utility>

#include "bind_kernel.h"
#include "program.h"
#include "tree_ensemble.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

template <typename T>
using In = nb::ndarray<const T, nb::c_contig, nb::device::cpu>;
template <typename T>
using Out = nb::ndarray<T, nb::c_contig, nb::device::cpu>;

struct TreeForestHandle {
  // (shared with the Program kernels that run it, which may outlive the handle)
  std::shared_ptr<const lowp::TreeForestBase> forest;
};

template <typename T>
TreeForestHandle make_forest(In<int64_t> feature, In<T> threshold, In<int8_t> mode,
                             In<uint16_t> go_mask, In<int64_t> true_child,
                             In<int64_t> false_child, In<int64_t> roots,
                             In<int64_t> weight_target, In<T> weight_value, int64_t width,
                             int64_t targets, In<int64_t> member_node,
                             In<int64_t> member_start, In<uint8_t> member_big,
                             In<double> member_values) {
  const size_t n = feature.size();
  if (threshold.size() != n || mode.size() != n || go_mask.size() != n ||
      true_child.size() != n || false_child.size() != n || n == 0 ||
      weight_target.size() != weight_value.size() || weight_target.size() % n != 0)
    throw std::invalid_argument("tree_forest: the node arrays differ in length");
  if (member_start.size() != member_node.size() + 1 || member_big.size() != member_node.size())
    throw std::invalid_argument("tree_forest: member_start needs one entry per set, plus one");
  for (size_t k = 0; k < member_node.size(); ++k)
    if (member_start.data()[k] < 0 || member_start.data()[k] > member_start.data()[k + 1] ||
        size_t(member_start.data()[k + 1]) > member_values.size())
      throw std::invalid_argument("tree_forest: member_start out of range");
  lowp::TreeForestSpec<T> s;
  s.nodes = int64_t(n);
  s.feature = feature.data();
  s.threshold = threshold.data();
  s.mode = mode.data();
  s.go_mask = go_mask.data();
  s.true_child = true_child.data();
  s.false_child = false_child.data();
  s.trees = int64_t(roots.size());
  s.roots = roots.data();
  s.slots = int64_t(weight_target.size() / n);
  s.width = width;
  s.weight_target = weight_target.data();
  s.weight_value = weight_value.data();
  s.targets = targets;
  s.member_nodes = int64_t(member_node.size());
  s.member_node = member_node.data();
  s.member_start = member_start.data();
  s.member_big = member_big.data();
  s.member_values = member_values.data();
  for (size_t i = 0; i < n * size_t(s.slots); ++i)
    if (weight_target.data()[i] >= targets)
      throw std::invalid_argument("tree_forest: a weight's target out of range");
  nb::gil_scoped_release nogil;
  return TreeForestHandle{lowp::build_tree_forest(s)};
}

// The run of the forest on `rows` rows of `x`, checked, as a kernel that keeps its arrays
// and the forest alive.
template <typename T>
lowp::Kernel make_scores(const TreeForestHandle& h, In<T> x, int64_t rows, int64_t features,
                         In<int64_t> bounds, int aggregate, Out<T> scores,
                         Out<uint8_t> has_score, int threads) {
  const lowp::TreeForestBase& f = *h.forest;
  if (f.is_double() != (sizeof(T) == 8))
    throw std::invalid_argument("tree_ensemble_scores: x is not of the forest's type");
  if (rows < 0 || features < f.features_read() || x.size() != size_t(rows * features))
    throw std::invalid_argument("tree_ensemble_scores: x is not rows x features");
  if (scores.size() != size_t(rows * f.targets()) || has_score.size() != scores.size())
    throw std::invalid_argument("tree_ensemble_scores: outputs are not rows x targets");
  if (aggregate < 0 || aggregate > 3)
    throw std::invalid_argument("tree_ensemble_scores: unknown aggregate");
  const size_t groups = bounds.size() - 1;
  const int64_t* b = bounds.data();
  if (bounds.size() < 2 || b[0] != 0 || b[groups] != f.trees())
    throw std::invalid_argument("tree_ensemble_scores: bounds must go from 0 to the trees");
  for (size_t g = 0; g < groups; ++g)
    if (b[g] > b[g + 1]) throw std::invalid_argument("tree_ensemble_scores: bounds decrease");
  return [forest = h.forest, x, rows, features, bounds, aggregate, scores, has_score,
          threads, groups] {
    lowp::tree_ensemble_scores<T>(*forest, x.data(), rows, features, bounds.data(),
                                  int64_t(groups), lowp::TreeAggregate(aggregate),
                                  scores.data(), has_score.data(), threads);
  };
}

template <typename T>
void run_scores(const TreeForestHandle& h, In<T> x, int64_t rows, int64_t features,
                In<int64_t> bounds, int aggregate, Out<T> scores, Out<uint8_t> has_score,
                int threads) {
  const lowp::Kernel k = make_scores<T>(h, std::move(x), rows, features, std::move(bounds),
                                        aggregate, std::move(scores), std::move(has_score),
                                        threads);
  nb::gil_scoped_release nogil;
  k();
}

template <typename T>
void append_scores(lowp::Program& p, const TreeForestHandle& h, In<T> x, int64_t rows,
                   int64_t features, In<int64_t> bounds, int aggregate, Out<T> scores,
                   Out<uint8_t> has_score, int threads) {
  p.append(make_scores<T>(h, std::move(x), rows, features, std::move(bounds), aggregate,
                          std::move(scores), std::move(has_score), threads));
}

// TreeEnsembleClassifier's labels and scores from the sums (tree_classes), checked, as a
// kernel that keeps its arrays alive.
template <typename T>
lowp::Kernel make_classes(In<T> scores, In<uint8_t> has_score, int64_t rows, int64_t classes,
                          In<int64_t> labels, In<T> base, bool binary, bool all_positive,
                          Out<int64_t> label, Out<float> z) {
  if (rows < 0 || classes < 2 || scores.size() != size_t(rows * classes) ||
      has_score.size() != scores.size() || z.size() != scores.size() ||
      label.size() != size_t(rows) || labels.size() != size_t(classes))
    throw std::invalid_argument("tree_classes: arrays are not rows x classes");
  const size_t n_base = base.size();
  if (!(n_base == 0 || n_base == size_t(classes) || (classes == 2 && n_base <= 2)))
    throw std::invalid_argument("tree_classes: base values are not 0 or one a class");
  return [=] {
    lowp::tree_classes<T>(scores.data(), has_score.data(), rows, classes, labels.data(),
                          base.data(), int64_t(n_base), binary, all_positive, label.data(),
                          z.data());
  };
}

}  // namespace

void bind_tree_ensemble(nb::module_& m, nb::class_<lowp::Program>& program) {
  nb::class_<TreeForestHandle>(m, "TreeForest")
      .def_prop_ro("bytes", [](const TreeForestHandle& h) { return h.forest->bytes(); })
      .def_prop_ro("same_mode", [](const TreeForestHandle& h) { return h.forest->same_mode(); });
  m.def("tree_forest", &make_forest<float>, "feature"_a, "threshold"_a, "mode"_a,
        "go_mask"_a, "true_child"_a, "false_child"_a, "roots"_a, "weight_target"_a,
        "weight_value"_a, "width"_a, "targets"_a, "member_node"_a, "member_start"_a,
        "member_big"_a, "member_values"_a);
  m.def("tree_forest", &make_forest<double>, "feature"_a, "threshold"_a, "mode"_a,
        "go_mask"_a, "true_child"_a, "false_child"_a, "roots"_a, "weight_target"_a,
        "weight_value"_a, "width"_a, "targets"_a, "member_node"_a, "member_start"_a,
        "member_big"_a, "member_values"_a);
  m.def("tree_ensemble_scores", &run_scores<float>, "forest"_a, "x"_a, "rows"_a, "features"_a,
        "bounds"_a, "aggregate"_a, "scores"_a, "has_score"_a, "threads"_a);
  m.def("tree_ensemble_scores", &run_scores<double>, "forest"_a, "x"_a, "rows"_a,
        "features"_a, "bounds"_a, "aggregate"_a, "scores"_a, "has_score"_a, "threads"_a);
  program.def("tree_ensemble_scores", &append_scores<float>, "forest"_a, "x"_a, "rows"_a,
              "features"_a, "bounds"_a, "aggregate"_a, "scores"_a, "has_score"_a,
              "threads"_a);
  program.def("tree_ensemble_scores", &append_scores<double>, "forest"_a, "x"_a, "rows"_a,
              "features"_a, "bounds"_a, "aggregate"_a, "scores"_a, "has_score"_a,
              "threads"_a);
  lowp::def_kernel(m, program, "tree_classes", &make_classes<float>, "scores"_a,
                   "has_score"_a, "rows"_a, "classes"_a, "labels"_a, "base"_a, "binary"_a,
                   "all_positive"_a, "label"_a, "z"_a);
  lowp::def_kernel(m, program, "tree_classes", &make_classes<double>, "scores"_a,
                   "has_score"_a, "rows"_a, "classes"_a, "labels"_a, "base"_a, "binary"_a,
                   "all_positive"_a, "label"_a, "z"_a);
}
