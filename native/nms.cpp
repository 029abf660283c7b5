// Driver of NonMaxSuppression (nms.h): the boxes' corners and areas once per batch, per
// (batch, class) the candidates' heap and the kept boxes, the pairs on the thread pool, the
// rows joined in (batch, class) order. The result does not depend on the thread count.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "dispatch.h"
#include "nms.h"
#include "threadpool.h"

namespace lowp {

namespace {

NmsOverlapFn active_overlap() {
  const std::string name = active_table()->name;
  if (name == "scalar") return nms_overlap_scalar;
  if (name == "avx512vnni" || name == "amx") return nms_overlap_avx512;
  return nms_overlap_avx2;  // avx2, avxvnni, avxvnni_evex
}

struct Item {
  float score;
  int64_t index;
};

// BoxInfoPtr::operator< of ONNX Runtime: a lower score, or an equal one and a higher index
// (a NaN score compares neither way)
inline bool before(const Item& a, const Item& b) {
  return a.score < b.score || (a.score == b.score && a.index > b.index);
}

// libstdc++'s __adjust_heap with __push_heap, as lowp.runtime.float_detection._adjust_heap
// replays them: `item` sinks from `hole` along the larger children, then rises.
void adjust_heap(Item* heap, int64_t hole, int64_t n, Item item) {
  const int64_t top = hole;
  int64_t child = hole;
  while (child < (n - 1) / 2) {
    child = 2 * (child + 1);
    if (before(heap[child], heap[child - 1])) --child;
    heap[hole] = heap[child];
    hole = child;
  }
  if ((n & 1) == 0 && child == (n - 2) / 2) {
    child = 2 * (child + 1);
    heap[hole] = heap[child - 1];
    hole = child - 1;
  }
  int64_t parent = (hole - 1) / 2;
  while (hole > top && before(heap[parent], item)) {
    heap[hole] = heap[parent];
    hole = parent;
    parent = (hole - 1) / 2;
  }
  heap[hole] = item;
}

// std::make_heap
void make_heap(Item* heap, int64_t n) {
  if (n < 2) return;
  for (int64_t parent = (n - 2) / 2; parent >= 0; --parent)
    adjust_heap(heap, parent, n, heap[parent]);
}

// Corners (SuppressByIOU's MaxMin of y1, x1, y2, x2, or centre -/+ size / 2) and areas of
// one batch's n boxes, into five arrays of n.
void corners(const float* boxes, int64_t n, bool center, float* x0, float* x1, float* y0,
             float* y1, float* area) {
  for (int64_t i = 0; i < n; ++i) {
    const float* b = boxes + 4 * i;
    if (center) {
      const float half_w = b[2] / 2.0f, half_h = b[3] / 2.0f;
      x0[i] = b[0] - half_w, x1[i] = b[0] + half_w;
      y0[i] = b[1] - half_h, y1[i] = b[1] + half_h;
    } else {
      // MaxMin(lhs, rhs): lhs >= rhs ? (rhs, lhs) : (lhs, rhs)
      if (b[1] >= b[3]) x0[i] = b[3], x1[i] = b[1]; else x0[i] = b[1], x1[i] = b[3];
      if (b[0] >= b[2]) y0[i] = b[2], y1[i] = b[0]; else y0[i] = b[0], y1[i] = b[2];
    }
    area[i] = (x1[i] - x0[i]) * (y1[i] - y0[i]);
  }
}

// One (batch, class): its kept boxes as rows (batch, class, box) into `rows`; returns how
// many. `c` the batch's corner arrays (5 x n).
int64_t select_class(const NmsArgs& a, int64_t batch, int64_t cls, const float* c,
                     NmsOverlapFn overlap, int64_t* rows) {
  const int64_t n = a.n;
  const float* s = a.scores + (batch * a.classes + cls) * n;
  std::vector<Item> heap;
  for (int64_t i = 0; i < n; ++i)
    if (!a.has_score_threshold || s[i] > a.score_threshold) heap.push_back({s[i], i});
  int64_t size = int64_t(heap.size());
  if (size == 0) return 0;
  make_heap(heap.data(), size);
  const int64_t cap = std::min(a.limit, size);
  std::vector<float> kept_buf(5 * size_t(cap));
  float* kx0 = kept_buf.data();
  float* kx1 = kx0 + cap;
  float* ky0 = kx1 + cap;
  float* ky1 = ky0 + cap;
  float* ka = ky1 + cap;
  const NmsBoxes kept{kx0, kx1, ky0, ky1, ka};
  const float *x0 = c, *x1 = c + n, *y0 = c + 2 * n, *y1 = c + 3 * n, *area = c + 4 * n;
  int64_t count = 0;
  while (size > 0 && count < a.limit) {
    const int64_t j = heap[0].index;
    const NmsBox box{x0[j], x1[j], y0[j], y1[j], area[j]};
    // a candidate whose own area is <= 0 overlaps nothing (its test in SuppressByIOU)
    if (box.area <= 0.0f || !overlap(box, kept, count, a.iou_threshold)) {
      kx0[count] = box.x_min, kx1[count] = box.x_max, ky0[count] = box.y_min;
      ky1[count] = box.y_max, ka[count] = box.area;
      rows[3 * count] = batch, rows[3 * count + 1] = cls, rows[3 * count + 2] = j;
      ++count;
    }
    // std::pop_heap
    const Item last = heap[--size];
    if (size > 0) adjust_heap(heap.data(), 0, size, last);
  }
  return count;
}

}  // namespace

int64_t run_nms(const NmsArgs& a, int threads) {
  const int64_t cap = std::min(a.limit, a.n);
  if (cap <= 0 || a.batches <= 0 || a.classes <= 0) return 0;
  std::vector<float> c(size_t(a.batches) * 5 * size_t(a.n));
  for (int64_t b = 0; b < a.batches; ++b) {
    float* cb = c.data() + b * 5 * a.n;
    corners(a.boxes + b * a.n * 4, a.n, a.center_point_box, cb, cb + a.n, cb + 2 * a.n,
            cb + 3 * a.n, cb + 4 * a.n);
  }
  const NmsOverlapFn overlap = active_overlap();
  const int64_t pairs = a.batches * a.classes;
  std::vector<int64_t> counts(size_t(pairs), 0);
  auto pair = [&](int64_t p) {
    const int64_t b = p / a.classes;
    counts[size_t(p)] = select_class(a, b, p % a.classes, c.data() + b * 5 * a.n, overlap,
                                     a.out + p * cap * 3);
  };
  if (threads <= 0) threads = ThreadPool::max_threads();
  threads = int(std::min<int64_t>(threads, pairs));
  if (threads <= 1) {
    for (int64_t p = 0; p < pairs; ++p) pair(p);
  } else {
    // classes differ in their work: pairs handed out one at a time
    std::atomic<int64_t> next{0};
    ThreadPool::instance().run(threads, [&](int) {
      for (int64_t p = next++; p < pairs; p = next++) pair(p);
    });
  }
  int64_t total = 0;
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t k = counts[size_t(p)];
    if (k > 0 && total != p * cap)
      std::memmove(a.out + total * 3, a.out + p * cap * 3, size_t(k) * 3 * sizeof(int64_t));
    total += k;
  }
  return total;
}

}  // namespace lowp
