// Driver of layer_norm.h: the row kernel of the active path, runs of rows on the pool.
#include "layer_norm.h"

#include <algorithm>
#include <string>

#include "dispatch.h"
#include "threadpool.h"

namespace lowp {

void run_layer_norm(const LayerNormArgs& a, int threads) {
  if (a.rows <= 0 || a.n <= 0) return;
  const LayerNormRowsFn k =
      std::string(active_table()->name) == "scalar" ? kLayerNormScalar : kLayerNormFma;
  // ~16K values per task: a row is a few hundred cycles per hundred values
  const int64_t per = std::max<int64_t>(1, (int64_t(1) << 14) / a.n);
  run_elementwise(a.rows, per, threads,
                  [&](int64_t r0, int64_t len) { k(a, r0, r0 + len); });
}

}  // namespace lowp
