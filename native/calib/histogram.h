// Kernel layer of lowp._calib: one pass over a block of float32 activations that finds the
// exact min and max, counts zeros (and negative zeros), flags non-finite values and, for the
// histogram pass, bins every other value exactly as lowp.calib.observers bins it:
//   (C1) bin(x) = clamp(floor(double(x) * factor), first, last) - first
// with factor = 2^-q (the bin width is 2^q, so the product is exact) and the stored bins
// first..last; the same float64 operations as the reference (no FMA: the build uses
// -ffp-contract=off), so the bin of every value is the reference's. Zeros are not
// scattered: bin(+-0) = -first (clamped), and the driver adds them there. One table per instruction set
// (scan_scalar/avx2/avx512.cpp); the driver (bindings.cpp) splits the data over threads.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace lowp_calib {

// What one scan found. min/max are over the values seen (meaningless when !finite).
struct ScanResult {
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();
  int64_t zeros = 0;      // elements equal to zero (either sign)
  int64_t neg_zeros = 0;  // elements that are -0.0
  bool finite = true;     // no NaN and no +-Inf
};

// Binning parameters; `hist` holds kSub interleaved sub-histograms of `bins` uint32 counts
// (sub-histogram s at hist + s * bins), so that runs of equal values do not serialise on one
// counter. Zero and non-finite values are never scattered.
struct BinArgs {
  double factor = 0.0, first = 0.0, last = 0.0;
  int64_t bins = 0;
  uint32_t* hist = nullptr;
};
constexpr int kSub = 4;

// Scan x[0, n): min/max/zeros/finite into r; when `a` is non-null, also bin the values.
using ScanFn = void (*)(const float* x, int64_t n, const BinArgs* a, ScanResult& r);

struct ScanKernels {
  const char* name;
  ScanFn scan;
};

extern const ScanKernels kScanScalar, kScanAvx2, kScanAvx512;

// The scalar step shared by every path (and the tails of the vector loops).
static inline void scan_one(float v, const BinArgs* a, uint32_t* sub, ScanResult& r) {
  if (!(std::fabs(v) <= std::numeric_limits<float>::max())) {  // NaN or +-Inf
    r.finite = false;
    return;
  }
  if (v < r.min) r.min = v;
  if (v > r.max) r.max = v;
  if (v == 0.0f) {
    ++r.zeros;
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    r.neg_zeros += bits >> 31;
    return;
  }
  if (a != nullptr) {
    double t = std::floor(double(v) * a->factor);
    t = t < a->first ? a->first : (t > a->last ? a->last : t);
    ++sub[int64_t(t - a->first)];
  }
}

}  // namespace lowp_calib
