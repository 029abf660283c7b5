// Scalar path of the calibration scan (histogram.h): one value at a time.
#include "histogram.h"

namespace lowp_calib {
namespace {

void scan_scalar(const float* x, int64_t n, const BinArgs* a, ScanResult& r) {
  for (int64_t i = 0; i < n; ++i)
    scan_one(x[i], a, a ? a->hist + (i % kSub) * a->bins : nullptr, r);
}

}  // namespace

const ScanKernels kScanScalar{"scalar", scan_scalar};

}  // namespace lowp_calib
