// Driver layer: runs a Program's kernels in order (see program.h).
#include "program.h"

namespace lowp {

void Program::run() const {
  for (const Kernel& k : calls_) k();
}

}  // namespace lowp
