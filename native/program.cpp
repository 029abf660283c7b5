// Driver layer: runs a Program's kernels in order (see program.h).
#include "program.h"

#include <chrono>

namespace lowp {

void Program::run() const {
  for (const Kernel& k : calls_) k();
}

void Program::run_timed(int64_t* ns) const {
  using clock = std::chrono::steady_clock;
  for (size_t i = 0; i < calls_.size(); ++i) {
    const auto t0 = clock::now();
    calls_[i]();
    ns[i] = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - t0).count();
  }
}

}  // namespace lowp
