// Tree ensembles (ai.onnx.ml TreeEnsembleClassifier / TreeEnsembleRegressor / TreeEnsemble):
// the walk of every tree for every row and the aggregation of the leaf weights, as
// lowp.runtime.ml_trees computes them (its numpy form is the reference; ONNX Runtime's
// tree_ensemble_common.h / tree_ensemble_aggregator.h the specification). The forest is a
// compact node array built once per node at load; the caller gives the ranges of trees that
// are aggregated separately and merged in order (ONNX Runtime's thread split, (O204)).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace lowp {

enum class TreeAggregate : int { kSum = 0, kAverage = 1, kMin = 2, kMax = 3 };

// The forest's nodes as lowp.runtime.ml_trees.Forest holds them (arrays of `nodes`).
template <typename T>
struct TreeForestSpec {
  int64_t nodes = 0;
  const int64_t* feature = nullptr;
  const T* threshold = nullptr;
  const int8_t* mode = nullptr;        // ml_trees.MODES codes; 6 a leaf, 7 BRANCH_MEMBER
  const uint16_t* go_mask = nullptr;   // the comparison outcomes that go true (ml_trees.GO),
  //                                      bit 0 a NaN x (missing_value_tracks_true)
  const int64_t* true_child = nullptr;
  const int64_t* false_child = nullptr;
  int64_t trees = 0;
  const int64_t* roots = nullptr;
  int64_t slots = 0;                   // columns of weight_target / weight_value
  int64_t width = 1;                   // of them, those read (1: one target)
  const int64_t* weight_target = nullptr;   // (nodes, slots), -1 past a leaf's weights
  const T* weight_value = nullptr;
  int64_t targets = 1;
  // BRANCH_MEMBER nodes: member_node[k]'s set is member_values[member_start[k] ..
  // member_start[k + 1]), compared with x (small sets) or with int32(x) (big sets)
  int64_t member_nodes = 0;
  const int64_t* member_node = nullptr;
  const int64_t* member_start = nullptr;
  const uint8_t* member_big = nullptr;
  const double* member_values = nullptr;
};

class TreeForestBase {
 public:
  virtual ~TreeForestBase() = default;
  virtual bool is_double() const = 0;
  virtual int64_t features_read() const = 0;   // 1 + the largest feature index
  virtual int64_t targets() const = 0;
  virtual int64_t trees() const = 0;
  virtual size_t bytes() const = 0;
  // the branches' one mode (ml_trees.MODES) when the forest also has the compact form the
  // walk takes, else -1
  virtual int same_mode() const = 0;
};

template <typename T>
class TreeForest;

template <typename T>
std::unique_ptr<TreeForestBase> build_tree_forest(const TreeForestSpec<T>& spec);

// scores / has_score (rows x targets, row-major) of x (rows x features, row-major): each
// range [bounds[g], bounds[g + 1]) of trees aggregated from zero (its trees in order, a
// leaf's weights in order), the ranges merged in order; on up to `threads` threads (the
// bytes do not depend on them).
template <typename T>
void tree_ensemble_scores(const TreeForestBase& forest, const T* x, int64_t rows,
                          int64_t features, const int64_t* bounds, int64_t groups,
                          TreeAggregate aggregate, T* scores, uint8_t* has_score, int threads);

// TreeEnsembleClassifier's labels (rows) and float32 scores (rows x classes) from the sums
// of tree_ensemble_scores (rows x classes), post_transform NONE, as
// lowp.runtime.ml_trees.TreeEnsembleClassifier computes them ((O205)): `base` (n_base of
// 0 or the classes; 0 to 2 for two classes) added, the first largest score's label (more
// than two classes), the two-class rules of `binary` (every weight names one class) and
// `all_positive` (no weight below 0), the second score write_scores makes from one.
template <typename T>
void tree_classes(const T* scores, const uint8_t* has_score, int64_t rows, int64_t classes,
                  const int64_t* labels, const T* base, int64_t n_base, bool binary,
                  bool all_positive, int64_t* label, float* z);

}  // namespace lowp
