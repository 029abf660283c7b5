// ScatterND's copy and its writes (scatter_nd.h): a memcpy of the data, then one slice per
// index tuple, in order, so that a later duplicate wins (numpy's assignment) or adds onto
// the earlier ones (numpy's add.at / multiply.at).
#include "scatter_nd.h"

#include <cstring>
#include <vector>

namespace lowp {
namespace {

template <typename Index>
bool slice_offsets(const ScatterNDArgs& a, const Index* idx, std::vector<int64_t>& offsets,
                   int64_t* status) {
  for (int64_t i = 0; i < a.count; ++i) {
    int64_t at = 0;
    for (int j = 0; j < a.depth; ++j) {
      const int64_t d = a.dims[j];
      int64_t v = int64_t(idx[i * a.depth + j]);
      if (v < -d || v >= d) {
        status[0] = 1, status[1] = v;
        return false;
      }
      at = at * d + (v < 0 ? v + d : v);
    }
    offsets[size_t(i)] = at * a.slice;
  }
  return true;
}

// y[at + e] op= u[e] for the slice's elements (T the element type; integers through their
// unsigned type, so that products and sums wrap as numpy's do)
template <typename T, typename Op>
void combine(const ScatterNDArgs& a, const std::vector<int64_t>& offsets, Op op) {
  T* y = reinterpret_cast<T*>(a.y);
  const T* u = reinterpret_cast<const T*>(a.updates);
  for (int64_t i = 0; i < a.count; ++i) {
    T* dst = y + offsets[size_t(i)];
    const T* src = u + i * a.slice;
    for (int64_t e = 0; e < a.slice; ++e) dst[e] = op(dst[e], src[e]);
  }
}

template <typename T>
void reduce(const ScatterNDArgs& a, const std::vector<int64_t>& offsets) {
  if (a.reduction == ScatterReduction::kAdd)
    combine<T>(a, offsets, [](T p, T q) { return T(p + q); });
  else
    combine<T>(a, offsets, [](T p, T q) { return T(p * q); });
}

}  // namespace

void run_scatter_nd(const ScatterNDArgs& a, int64_t* status) {
  const int64_t total = a.slice * a.itemsize;  // bytes per slice
  int64_t elements = a.slice;
  for (int j = 0; j < a.depth; ++j) elements *= a.dims[j];
  if (a.y != a.x) std::memcpy(a.y, a.x, size_t(elements * a.itemsize));
  std::vector<int64_t> offsets(size_t(a.count));
  const bool ok = a.wide ? slice_offsets(a, static_cast<const int64_t*>(a.indices), offsets, status)
                         : slice_offsets(a, static_cast<const int32_t*>(a.indices), offsets, status);
  if (!ok) return;
  status[0] = 0;
  if (a.reduction == ScatterReduction::kNone) {
    for (int64_t i = 0; i < a.count; ++i)
      std::memcpy(a.y + offsets[size_t(i)] * a.itemsize, a.updates + i * total, size_t(total));
    return;
  }
  switch (a.type) {
    case ScatterType::kFloat32: return reduce<float>(a, offsets);
    case ScatterType::kFloat64: return reduce<double>(a, offsets);
    case ScatterType::kInt64: return reduce<uint64_t>(a, offsets);
    case ScatterType::kInt32: return reduce<uint32_t>(a, offsets);
  }
}

}  // namespace lowp
