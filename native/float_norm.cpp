// Driver of the LayerNormalization and SimplifiedLayerNormalization rows (float_norm.h): the active path's kernel, rows on
// the thread pool.
#include "float_norm.h"

#include <string>

#include "dispatch.h"
#include "threadpool.h"

namespace lowp {

void run_float_layer_norm(const LayerNormArgs& a, int threads) {
  if (a.rows <= 0 || a.n <= 0) return;
  const LayerNormRowsFn rows = a.welford ? kWelfordNorm
                               : std::string(active_table()->name) == "scalar" ? kLayerNormScalar
                                                                               : kLayerNormAvx2;
  // a few passes over each row: a thread pays from some ten thousand values
  const int64_t block = std::max<int64_t>(1, (int64_t(1) << 14) / a.n);
  run_elementwise(a.rows, block, threads,
                  [&](int64_t r0, int64_t len) { rows(a, r0, r0 + len); });
}

void run_float_simplified_layer_norm(const LayerNormArgs& a, int threads) {
  if (a.rows <= 0 || a.n <= 0) return;
  const std::string name = active_table()->name;
  const LayerNormRowsFn rows = name == "scalar"                           ? kSimplifiedNormScalar
                               : name == "avx512vnni" || name == "amx" ? kSimplifiedNormAvx512
                                                                         : kSimplifiedNormAvx2;
  // two passes over each row: a thread pays from some ten thousand values
  const int64_t block = std::max<int64_t>(1, (int64_t(1) << 14) / a.n);
  run_elementwise(a.rows, block, threads,
                  [&](int64_t r0, int64_t len) { rows(a, r0, r0 + len); });
}

}  // namespace lowp
