// Tree ensembles (tree_ensemble.h): one 20-byte (float) or 24-byte (double) node each, the
// trees walked for a block of rows at a time, several (tree, row) walks in lockstep so that
// their node loads overlap; the leaf weights added in (tree, weight) order per row. A forest
// of one mode also has 12- or 16-byte compact nodes (the false child next), walked one walk
// after the other while the caches hold them.
#include "tree_ensemble.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <unordered_map>

#include "threadpool.h"

namespace lowp {
namespace {

constexpr int8_t kModeLeaf = 6, kModeMember = 7;

// node kinds, the walks' ones first
enum : uint8_t { kCompare = 0, kMember = 1, kMemberBig = 2, kLeafOne = 3, kLeaf = 4 };

template <typename T>
struct Node {
  union {
    T threshold;      // kCompare
    T weight;         // kLeafOne: its one weight
    uint32_t set;     // kMember, kMemberBig: the index of its set
  };
  int32_t feature;    // a leaf: 0 (a walk reads x there and stays)
  uint32_t true_child;    // kLeaf: the first of its weights
  uint32_t false_child;   // kLeaf: the number of its weights; kLeafOne: its target
  uint16_t mask;      // the comparison outcomes that go true; bit 0 a NaN x (ml_trees.GO)
  uint8_t kind;
};

static_assert(sizeof(Node<float>) == 20 && sizeof(Node<double>) == 24, "node layout");

template <typename T>
struct Weight {
  T value;
  int32_t target;
};

// A forest whose branches all have one mode (ONNX Runtime's same_mode_, what tree writers
// produce) is also kept as compact nodes in depth-first order, each branch's false child the
// next node (ONNX Runtime's layout): the threshold, the feature with two flags, and the true
// child; a leaf holds its one weight and target, or points at its node of `nodes`
template <typename T>
struct Compact {
  T threshold;
  uint32_t feature;   // bit 31 a leaf; a branch: bit 30 missing_value_tracks_true, a
  //                     leaf: bit 30 several weights
  uint32_t child;     // a branch: its true child; a leaf: its one weight's target (the
  //                     weight in `threshold`) or, with several, its node in TreeForest::nodes
};

constexpr uint32_t kCompactLeaf = 1u << 31, kCompactMissing = 1u << 30,
                   kCompactWeights = 1u << 30, kCompactFeature = kCompactMissing - 1;

static_assert(sizeof(Compact<float>) == 12 && sizeof(Compact<double>) == 16, "compact layout");

// the one mode's comparison (C's, as ONNX Runtime's loop writes it: NaN fails all but !=)
template <int Mode, typename T>
inline bool goes_true(T v, T t) {
  if constexpr (Mode == 0) return v <= t;
  if constexpr (Mode == 1) return v < t;
  if constexpr (Mode == 2) return v >= t;
  if constexpr (Mode == 3) return v > t;
  if constexpr (Mode == 4) return v == t;
  return v != t;
}

// C's static_cast<int32_t> as x86 computes it (cvttss2si / cvttsd2si): truncation, and
// INT32_MIN for NaN and values beyond the range
template <typename T>
inline int32_t int32_cast(T v) {
  constexpr T low = T(-2147483648.0);
  return (v >= low && v < -low) ? int32_t(v) : std::numeric_limits<int32_t>::min();
}

}  // namespace

template <typename T>
class TreeForest final : public TreeForestBase {
 public:
  std::vector<Node<T>> nodes;
  std::vector<Weight<T>> weights;
  std::vector<uint32_t> roots;
  std::vector<double> set_values;
  std::vector<uint32_t> set_start;   // sets + 1
  int64_t n_targets = 1;
  int64_t max_feature = 0;
  bool has_sets = false;   // BRANCH_MEMBER nodes (no branchless walk)
  // the compact form (empty when the modes differ, or sets, or a shared subtree too big)
  std::vector<Compact<T>> compact;
  std::vector<uint32_t> compact_roots;
  int mode_of_compact = 0;   // the branches' one mode (ml_trees.MODES)

  bool is_double() const override { return sizeof(T) == 8; }
  int64_t features_read() const override { return max_feature + 1; }
  int64_t targets() const override { return n_targets; }
  int64_t trees() const override { return int64_t(roots.size()); }
  int same_mode() const override { return compact.empty() ? -1 : mode_of_compact; }
  size_t bytes() const override {
    return nodes.size() * sizeof(Node<T>) + weights.size() * sizeof(Weight<T>) +
           roots.size() * 4 + set_values.size() * 8 + set_start.size() * 4 +
           compact.size() * sizeof(Compact<T>) + compact_roots.size() * 4;
  }

  // the child a walk at kCompare node `n` takes for x value v, without a branch (the
  // outcome bits of ml_trees._outcomes)
  static uint32_t compare_step(const Node<T>& n, T v) {
    const T t = n.threshold;
    const unsigned lt = v < t, eq = v == t, gt = v > t, nan = v != v;
    const unsigned unordered = !(lt | eq | gt) & !nan;   // a NaN threshold
    const unsigned outcome = (lt << 1) | (eq << 2) | (gt << 4) | nan | (unordered << 8);
    const uint32_t go = uint32_t((n.mask & outcome) != 0);
    return n.false_child ^ ((n.true_child ^ n.false_child) & (0u - go));
  }

  // the child a walk at branch `n` takes for x value v
  uint32_t step(const Node<T>& n, T v) const {
    if (n.kind == kCompare) return compare_step(n, v);
    const double key = n.kind == kMemberBig ? double(int32_cast(v)) : double(v);
    bool in = (n.mask & 1) && v != v;     // a tracked NaN goes true
    for (uint32_t k = set_start[n.set]; !in && k < set_start[n.set + 1]; ++k)
      in = set_values[k] == key;
    return in ? n.true_child : n.false_child;
  }
};

namespace {

// TreeForest::compact from the nodes: each tree depth first from its root, a branch's false
// subtree right after it, then its true subtree; a node reached twice (a shared subtree) is
// copied, up to twice the nodes in all
template <typename T>
void build_compact(TreeForest<T>& f, const TreeForestSpec<T>& s) {
  if (f.has_sets) return;
  int mode = -1;
  for (int64_t i = 0; i < s.nodes; ++i) {
    if (s.mode[i] == kModeLeaf) continue;
    if (s.mode[i] < 0 || s.mode[i] > 5 || (mode >= 0 && s.mode[i] != mode)) return;
    if (s.feature[i] > int64_t(kCompactFeature)) return;
    mode = s.mode[i];
  }
  if (mode < 0) mode = 0;   // (leaves only)
  const size_t limit = 2 * size_t(s.nodes) + 1024;
  std::vector<Compact<T>> c;
  std::vector<uint32_t> roots;
  std::vector<std::pair<uint32_t, int64_t>> stack;   // (node, the branch whose true child it is)
  for (const uint32_t root : f.roots) {
    roots.push_back(uint32_t(c.size()));
    stack.assign(1, {root, -1});
    while (!stack.empty()) {
      const auto [i, parent] = stack.back();
      stack.pop_back();
      if (c.size() >= limit) return;
      const uint32_t at = uint32_t(c.size());
      if (parent >= 0) c[size_t(parent)].child = at;
      const Node<T>& n = f.nodes[i];
      Compact<T> k;
      if (n.kind >= kLeafOne) {     // its one weight and target, or its node
        const bool one = n.kind == kLeafOne;
        k.threshold = one ? n.weight : T(0);
        k.feature = kCompactLeaf | (one ? 0u : kCompactWeights);
        k.child = one ? n.false_child : i;
        c.push_back(k);
        continue;
      }
      k.threshold = n.threshold;
      k.feature = uint32_t(n.feature) | ((s.go_mask[i] & 1) ? kCompactMissing : 0u);
      k.child = 0;
      c.push_back(k);
      stack.push_back({n.true_child, int64_t(at)});
      stack.push_back({n.false_child, -1});
    }
  }
  f.compact = std::move(c);
  f.compact_roots = std::move(roots);
  f.mode_of_compact = mode;
}

}  // namespace

template <typename T>
std::unique_ptr<TreeForestBase> build_tree_forest(const TreeForestSpec<T>& s) {
  constexpr int64_t kMax = std::numeric_limits<uint32_t>::max();
  if (s.nodes <= 0 || s.nodes >= kMax || s.trees <= 0 || s.width < 1 || s.width > s.slots ||
      s.targets < 1)
    throw std::invalid_argument("tree_forest: sizes out of range");
  auto f = std::make_unique<TreeForest<T>>();
  f->n_targets = s.targets;
  f->nodes.resize(size_t(s.nodes));
  std::unordered_map<int64_t, int64_t> set_of;
  for (int64_t k = 0; k < s.member_nodes; ++k) set_of[s.member_node[k]] = k;
  f->set_start.push_back(0);
  for (int64_t k = 0; k < s.member_nodes; ++k) {
    for (int64_t j = s.member_start[k]; j < s.member_start[k + 1]; ++j)
      f->set_values.push_back(s.member_values[j]);
    f->set_start.push_back(uint32_t(f->set_values.size()));
  }
  const auto child = [&](int64_t c) {
    if (c < 0 || c >= s.nodes) throw std::invalid_argument("tree_forest: a child out of range");
    return uint32_t(c);
  };
  for (int64_t i = 0; i < s.nodes; ++i) {
    Node<T>& n = f->nodes[size_t(i)];
    n.mask = s.go_mask[i];
    n.feature = 0;
    n.true_child = n.false_child = 0;
    if (s.mode[i] == kModeLeaf) {
      const int64_t* target = s.weight_target + i * s.slots;
      const T* value = s.weight_value + i * s.slots;
      int64_t count = 0;
      for (int64_t w = 0; w < s.width; ++w) count += target[w] >= 0;
      if (count == 1) {
        for (int64_t w = 0; w < s.width; ++w)
          if (target[w] >= 0) n.weight = value[w], n.false_child = uint32_t(target[w]);
        n.kind = kLeafOne;
        continue;
      }
      n.kind = kLeaf;
      n.threshold = T(0);
      n.true_child = uint32_t(f->weights.size());
      n.false_child = uint32_t(count);
      for (int64_t w = 0; w < s.width; ++w)
        if (target[w] >= 0) f->weights.push_back({value[w], int32_t(target[w])});
      if (int64_t(f->weights.size()) >= kMax)
        throw std::invalid_argument("tree_forest: too many leaf weights");
      continue;
    }
    if (s.feature[i] < 0 || s.feature[i] > std::numeric_limits<int32_t>::max())
      throw std::invalid_argument("tree_forest: a feature index out of range");
    n.feature = int32_t(s.feature[i]);
    f->max_feature = std::max<int64_t>(f->max_feature, s.feature[i]);
    n.true_child = child(s.true_child[i]);
    n.false_child = child(s.false_child[i]);
    if (s.mode[i] == kModeMember) {
      const auto found = set_of.find(i);
      if (found == set_of.end()) throw std::invalid_argument("tree_forest: a member node without set");
      n.set = uint32_t(found->second);
      f->has_sets = true;
      n.kind = s.member_big[found->second] ? kMemberBig : kMember;
    } else {
      n.threshold = s.threshold[i];
      n.kind = kCompare;
    }
  }
  for (int64_t t = 0; t < s.trees; ++t) f->roots.push_back(child(s.roots[t]));
  build_compact(*f, s);
  return f;
}

namespace {

template <typename T>
inline void add_weight(TreeAggregate agg, T v, T& s, uint8_t& h) {
  if (agg == TreeAggregate::kMin) {
    if (!h || v < s) s = v;
  } else if (agg == TreeAggregate::kMax) {
    if (!h || v > s) s = v;
  } else {
    s += v;
  }
  h = 1;
}

constexpr int64_t kLockstep = 16;    // (tree, row) walks advanced together
constexpr int64_t kRowBlock = 128;   // rows walked through one tree before the next
// a compact forest of up to this size is walked one walk after the other (the caches hold
// it: the predicted comparisons are the fastest walk); a bigger one in lockstep (its walks
// wait on memory: luscinia_stress's 4.8 M nodes, 1 and 4 rows 1.4x slower the other way)
constexpr size_t kResidentBytes = size_t(4) << 20;
constexpr int64_t kSplitRows = 50;   // rows on one thread (ONNX Runtime's parallel_N_)

// a compact leaf's weights added into its row's scores s / has_score h (targets each)
template <typename T>
inline void add_leaf(const TreeForest<T>& f, const Compact<T>& leaf, TreeAggregate agg, T* s,
                     uint8_t* h) {
  if (!(leaf.feature & kCompactWeights)) {
    add_weight(agg, leaf.threshold, s[leaf.child], h[leaf.child]);
    return;
  }
  const Node<T>& n = f.nodes[leaf.child];
  const Weight<T>* w = f.weights.data() + n.true_child;
  for (uint32_t q = 0; q < n.false_child; ++q)
    add_weight(agg, w[q].value, s[size_t(w[q].target)], h[size_t(w[q].target)]);
}

// the compact walk of trees [t0, t1) (of the group range [g0, ..)) for rows [r0, r1) of a
// forest held in the caches: each tree for each row in turn, one walk after the other, its
// leaf's weights added at once (ONNX Runtime's loop of up to parallel_tree_N_ rows: the
// comparison a branch, which the processor predicts along a walk it has seen)
template <int Mode, typename T>
void walk_block_compact(const TreeForest<T>& f, const T* x, int64_t features, int64_t rows,
                        const int64_t* bounds, int64_t g0, int64_t t0, int64_t t1, int64_t r0,
                        int64_t r1, TreeAggregate agg, T* s, uint8_t* h) {
  const Compact<T>* c = f.compact.data();
  const int64_t targets = f.n_targets;
  int64_t g = g0;
  for (int64_t t = t0; t < t1; ++t) {
    while (t >= bounds[g + 1]) ++g;
    const uint32_t root = f.compact_roots[size_t(t)];
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * features;
      uint32_t p = root;
      while (!(c[p].feature & kCompactLeaf)) {
        const Compact<T>& n = c[p];
        const T v = xr[n.feature & kCompactFeature];
        const bool go = goes_true<Mode>(v, n.threshold) ||
                        ((n.feature & kCompactMissing) && v != v);
        p = go ? n.child : p + 1;
      }
      const size_t at = size_t((g * rows + r) * targets);
      add_leaf(f, c[p], agg, s + at, h + at);
    }
  }
}

template <typename T>
using BlockWalk = void (*)(const TreeForest<T>&, const T*, int64_t, int64_t, const int64_t*,
                           int64_t, int64_t, int64_t, int64_t, int64_t, TreeAggregate, T*,
                           uint8_t*);

// walk_block_compact by the forest's one mode (mode_of_compact, 0-5)
template <typename T>
constexpr BlockWalk<T> kResidentWalks[6] = {
    &walk_block_compact<0, T>, &walk_block_compact<1, T>, &walk_block_compact<2, T>,
    &walk_block_compact<3, T>, &walk_block_compact<4, T>, &walk_block_compact<5, T>};

// the k walks from compact nodes pos[j] on rows xr[j] to their leaves (pos[j] then the
// leaf's compact node): a forest beyond the caches, whose walks wait on memory
template <int Mode, typename T>
void walk_compact(const Compact<T>* c, int64_t k, uint32_t* pos, const T* const* xr) {
  // the walks in lockstep, each step without a branch on the data, the walks at a leaf
  // dropped from the round without a branch
  int32_t live[kLockstep];
  int64_t n_live = 0;
  for (int64_t j = 0; j < k; ++j) {
    live[n_live] = int32_t(j);
    n_live += !(c[pos[j]].feature & kCompactLeaf);
  }
  while (n_live > 0) {
    int64_t m = 0;
    for (int64_t i = 0; i < n_live; ++i) {
      const int32_t j = live[i];
      const uint32_t p = pos[j];
      const Compact<T>& n = c[p];
      const T v = xr[j][n.feature & kCompactFeature];
      const unsigned go = unsigned(goes_true<Mode>(v, n.threshold)) |
                          (unsigned((n.feature & kCompactMissing) != 0) & unsigned(v != v));
      const uint32_t next = go ? n.child : p + 1;
      pos[j] = next;
      live[m] = j;
      m += !(c[next].feature & kCompactLeaf);
    }
    n_live = m;
  }
}

// trees [t0, t1) of the group range [g0, ..) for rows [r0, r1): each walk's leaf weights
// added into its group's part (parts: groups x rows x targets), pairs in (tree, row) order;
// Mode 0-5: on the compact nodes of a forest of that one mode, -1: on the general nodes
template <int Mode, typename T>
void walk_block(const TreeForest<T>& f, const T* x, int64_t features, int64_t rows,
                const int64_t* bounds, int64_t g0, int64_t t0, int64_t t1, int64_t r0,
                int64_t r1, TreeAggregate agg, T* s, uint8_t* h) {
  const int64_t nr = r1 - r0, total = (t1 - t0) * nr, targets = f.n_targets;
  const Node<T>* nodes = f.nodes.data();
  int64_t g = g0;
  uint32_t pos[kLockstep];
  const T* xr[kLockstep];
  int64_t tree[kLockstep], row[kLockstep];
  int64_t t_next = t0, r_next = r0;     // the next (tree, row) pair, rows fastest
  for (int64_t p0 = 0; p0 < total; p0 += kLockstep) {
    const int64_t k = std::min(kLockstep, total - p0);
    for (int64_t j = 0; j < k; ++j) {
      tree[j] = t_next, row[j] = r_next;
      pos[j] = f.roots[size_t(t_next)];
      xr[j] = x + r_next * features;
      if (++r_next == r1) r_next = r0, ++t_next;
    }
    if constexpr (Mode >= 0) {
      const Compact<T>* c = f.compact.data();
      for (int64_t j = 0; j < k; ++j) pos[j] = f.compact_roots[size_t(tree[j])];
      walk_compact<Mode>(c, k, pos, xr);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t t = tree[j];
        while (t >= bounds[g + 1]) ++g;
        const size_t at = size_t((g * rows + row[j]) * targets);
        add_leaf(f, c[pos[j]], agg, s + at, h + at);
      }
      continue;
    } else if (f.has_sets) {
      for (bool moved = true; moved;) {
        moved = false;
        for (int64_t j = 0; j < k; ++j) {
          const Node<T>& n = nodes[pos[j]];
          if (n.kind >= kLeafOne) continue;
          pos[j] = f.step(n, xr[j][n.feature]);
          moved = true;
        }
      }
    } else {
      // every node a comparison or a leaf: the comparison without a branch on the data
      // (a walk's path is as unpredictable as the rows), a walk leaving the round robin
      // at its leaf (one branch a walk, not one a step)
      int64_t live[kLockstep];
      int64_t n_live = k;
      for (int64_t j = 0; j < k; ++j) live[j] = j;
      while (n_live > 0) {
        for (int64_t i = 0; i < n_live;) {
          const int64_t j = live[i];
          const Node<T>& n = nodes[pos[j]];
          if (n.kind != kCompare) {
            live[i] = live[--n_live];
            continue;
          }
          pos[j] = TreeForest<T>::compare_step(n, xr[j][n.feature]);
          ++i;
        }
      }
    }
    for (int64_t j = 0; j < k; ++j) {
      const int64_t t = tree[j], r = row[j];
      while (t >= bounds[g + 1]) ++g;
      const size_t at = size_t((g * rows + r) * targets);
      const Node<T>& n = nodes[pos[j]];
      if (n.kind == kLeafOne) {
        add_weight(agg, n.weight, s[at + size_t(n.false_child)], h[at + size_t(n.false_child)]);
        continue;
      }
      const Weight<T>* w = f.weights.data() + n.true_child;
      for (uint32_t q = 0; q < n.false_child; ++q)
        add_weight(agg, w[q].value, s[at + size_t(w[q].target)], h[at + size_t(w[q].target)]);
    }
  }
}

// walk_block on the compact nodes by the forest's one mode (mode_of_compact, 0-5)
template <typename T>
constexpr BlockWalk<T> kLockstepWalks[6] = {
    &walk_block<0, T>, &walk_block<1, T>, &walk_block<2, T>,
    &walk_block<3, T>, &walk_block<4, T>, &walk_block<5, T>};

// the merge of group g's part into the running total, as ml_trees.accumulate
template <typename T>
inline void merge(TreeAggregate agg, bool one_target, T part, uint8_t part_has, T& total,
                  uint8_t& total_has) {
  if (agg == TreeAggregate::kSum || agg == TreeAggregate::kAverage) {
    if (one_target || part_has) total = total + part;
  } else if (part_has) {
    const bool keep = total_has && (agg == TreeAggregate::kMin ? total < part : total > part);
    if (!keep) total = part;
  }
  total_has = total_has | part_has;
}

}  // namespace

template <typename T>
void tree_ensemble_scores(const TreeForestBase& base, const T* x, int64_t rows,
                          int64_t features, const int64_t* bounds, int64_t groups,
                          TreeAggregate agg, T* scores, uint8_t* has_score, int threads) {
  const auto& f = static_cast<const TreeForest<T>&>(base);
  const int64_t targets = f.n_targets;
  const size_t size = size_t(rows * targets);
  std::fill(scores, scores + size, T(0));
  std::fill(has_score, has_score + size, uint8_t(0));
  if (rows == 0 || groups <= 0) return;
  std::vector<T> part_scores(groups > 1 ? size * size_t(groups) : 0, T(0));
  std::vector<uint8_t> part_has(part_scores.size(), 0);
  T* s = groups > 1 ? part_scores.data() : scores;
  uint8_t* h = groups > 1 ? part_has.data() : has_score;
  threads = std::max(1, threads);
  // tasks: chunks of the groups (contiguous ranges of trees) by blocks of rows; the rows
  // split between the threads only when the chunks cannot keep them busy and there are
  // more than kSplitRows of them (a block walks each tree once: the fewer blocks, the
  // fewer times a tree comes from memory; a few rows walk on one thread, as ONNX
  // Runtime's batch of up to parallel_N_ rows does)
  const int64_t chunks = std::min<int64_t>(groups, threads == 1 ? 1 : int64_t(threads) * 8);
  const int64_t share = chunks >= threads || rows <= kSplitRows
      ? rows : (rows + threads - 1) / threads;
  const int64_t block = std::clamp<int64_t>(share, 1, kRowBlock);
  const int64_t blocks = (rows + block - 1) / block;
  const int64_t tasks = chunks * blocks;
  const bool resident = !f.compact.empty() &&
                        f.compact.size() * sizeof(Compact<T>) <= kResidentBytes;
  // (a forest held in the caches walked one walk after the other, a bigger one in lockstep;
  // without compact nodes, the general nodes in lockstep)
  const BlockWalk<T> walk = f.compact.empty() ? &walk_block<-1, T>
                            : resident        ? kResidentWalks<T>[f.mode_of_compact]
                                              : kLockstepWalks<T>[f.mode_of_compact];
  std::atomic<int64_t> next{0};
  const auto work = [&](int) {
    for (int64_t k; (k = next.fetch_add(1, std::memory_order_relaxed)) < tasks;) {
      const int64_t c = k / blocks, b = k % blocks;
      const int64_t g0 = c * groups / chunks, g1 = (c + 1) * groups / chunks;
      const int64_t r0 = b * block, r1 = std::min(rows, r0 + block);
      const int64_t t0 = bounds[g0], t1 = bounds[g1];
      walk(f, x, features, rows, bounds, g0, t0, t1, r0, r1, agg, s, h);
    }
  };
  if (threads == 1 || tasks == 1)
    work(0);
  else
    ThreadPool::instance().run(int(std::min<int64_t>(threads, tasks)), work);
  if (groups > 1) {
    const bool one_target = targets == 1;
    for (size_t i = 0; i < size; ++i) {
      T total = s[i];
      uint8_t total_has = h[i];
      for (int64_t g = 1; g < groups; ++g)
        merge(agg, one_target, s[size_t(g) * size + i], h[size_t(g) * size + i], total,
              total_has);
      scores[i] = total;
      has_score[i] = total_has;
    }
  }
  if (targets == 1 && (agg == TreeAggregate::kSum || agg == TreeAggregate::kAverage))
    std::fill(has_score, has_score + size, uint8_t(0));   // (the one-target sum never sets it)
}

template <typename T>
void tree_classes(const T* scores, const uint8_t* has_score, int64_t rows, int64_t n,
                  const int64_t* labels, const T* base, int64_t n_base, bool binary,
                  bool all_positive, int64_t* label, float* z) {
  const T zero = T(0);
  for (int64_t r = 0; r < rows; ++r) {
    const T* s = scores + r * n;
    const uint8_t* h = has_score + r * n;
    float* zr = z + r * n;
    if (n > 2) {
      int64_t best = -1;
      T top = zero;
      for (int64_t c = 0; c < n; ++c) {
        T v = s[c];
        bool has = h[c] != 0;
        if (c < n_base) v = has ? v + base[c] : base[c], has = true;
        if (has && (best == -1 || v > top)) best = c, top = v;
        zr[c] = float(has ? v : zero);
      }
      label[r] = labels[best < 0 ? n - 1 : best];   // (numpy's labels[-1])
      continue;
    }
    T s0 = s[0], s1 = s[1];
    const bool h0 = h[0] != 0, h1 = h[1] != 0;
    int second = -1;
    bool one_score = false;
    if (n_base == 2) {
      if (h1) {
        s1 = base[1] + s0;
        s0 = -s1;
      } else {
        s1 = s1 + base[1];
        s0 = s0 + base[0];
      }
    } else if (n_base == 1) {
      s0 = s0 + base[0];
      one_score = !h1;
    } else {
      second = 3;
      one_score = !h1;
    }
    const T pos_weight = h1 ? s1 : (h0 ? s0 : zero);
    if (!binary) {
      label[r] = pos_weight > zero ? 1 : 0;
    } else {
      const bool positive = all_positive ? pos_weight > T(0.5) : pos_weight > zero;
      label[r] = positive ? labels[1] : labels[0];
      second = all_positive ? (positive ? 0 : 1) : (positive ? 2 : 3);
    }
    const T v0 = h0 ? s0 : zero;
    if (!one_score) {
      zr[0] = float(v0);
      zr[1] = float(h1 ? s1 : zero);
      continue;
    }
    const T minus = h0 ? -s0 : zero;   // (ScoreValue's negation: 0, never -0, without one)
    const float v = float(v0);
    if (second < 0) {
      zr[0] = v;
      zr[1] = 0.0f;
    } else {
      zr[0] = second <= 1 ? float(T(1) - v0) : float(minus);
      zr[1] = v;
    }
  }
}

template std::unique_ptr<TreeForestBase> build_tree_forest(const TreeForestSpec<float>&);
template std::unique_ptr<TreeForestBase> build_tree_forest(const TreeForestSpec<double>&);
template void tree_ensemble_scores(const TreeForestBase&, const float*, int64_t, int64_t,
                                   const int64_t*, int64_t, TreeAggregate, float*, uint8_t*,
                                   int);
template void tree_ensemble_scores(const TreeForestBase&, const double*, int64_t, int64_t,
                                   const int64_t*, int64_t, TreeAggregate, double*, uint8_t*,
                                   int);
template void tree_classes(const float*, const uint8_t*, int64_t, int64_t, const int64_t*,
                           const float*, int64_t, bool, bool, int64_t*, float*);
template void tree_classes(const double*, const uint8_t*, int64_t, int64_t, const int64_t*,
                           const double*, int64_t, bool, bool, int64_t*, float*);

}  // namespace lowp
