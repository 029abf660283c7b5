// Driver, dispatch (cpuid) and nanobind bindings of lowp._calib: the calibration scans of
// histogram.h over a float32 array split across the thread pool (threadpool.h). Each task
// scans a contiguous range into its own sub-histograms; the integer counts and the min/max
// are merged afterwards, so results never depend on the thread count. Counts are added to
// the caller's int64 array only when every value is finite (the caller then raises).
#include <cpuid.h>
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "../threadpool.h"
#include "histogram.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace lowp_calib {
namespace {

bool os_saves(unsigned mask) {
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & mask) == mask;
}

bool cpu_has_avx2() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  if (!((c >> 27) & 1) || !((c >> 28) & 1) || !os_saves(0x6)) return false;  // OSXSAVE, AVX
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, a, b, c, d);
  return (b >> 5) & 1;
}

bool cpu_has_avx512f() {
  unsigned a, b, c, d;
  if (!cpu_has_avx2() || !os_saves(0xe6)) return false;  // XMM, YMM, opmask, ZMM state
  __cpuid_count(7, 0, a, b, c, d);
  return (b >> 16) & 1;
}

std::vector<const ScanKernels*> paths() {
  std::vector<const ScanKernels*> out{&kScanScalar};
  static const bool avx2 = cpu_has_avx2(), avx512 = cpu_has_avx512f();
  if (avx2) out.push_back(&kScanAvx2);
  if (avx512) out.push_back(&kScanAvx512);
  return out;
}

std::atomic<int> g_active{-1};  // index into paths(); -1 = the widest

const ScanKernels& active() {
  const std::vector<const ScanKernels*> all = paths();
  const int i = g_active.load();
  return *(i < 0 ? all.back() : all[size_t(i)]);
}

// Values per task below which another thread does not pay.
constexpr int64_t kMinPerThread = int64_t(1) << 16;
// Values per scan call: each uint32 sub-histogram counter stays far below 2^32.
constexpr int64_t kMaxBlock = int64_t(1) << 30;

// Scan x[0, n) on up to `threads` threads; when bins > 0, add the histogram of the bins
// first .. first + bins - 1 of width 1 / factor (zeros in bin -first) into counts[0, bins)
// if all values are finite and lie within [lo_ok, hi_ok].
ScanResult scan(const float* x, int64_t n, int64_t bins, double factor, double first,
                int64_t* counts, int threads, double lo_ok = 0.0, double hi_ok = 0.0) {
  const ScanKernels& k = active();
  if (threads <= 0) threads = lowp::ThreadPool::max_threads();
  const int64_t tasks = std::max<int64_t>(1, std::min<int64_t>(threads, n / kMinPerThread));
  const int64_t per = (n + tasks - 1) / tasks;
  std::vector<ScanResult> res(static_cast<size_t>(tasks));
  std::vector<std::vector<int64_t>> part(bins > 0 ? static_cast<size_t>(tasks) : 0);
  auto work = [&](int t) {
    const int64_t i0 = std::min(n, per * t), i1 = std::min(n, i0 + per);
    ScanResult r;
    if (bins <= 0) {
      for (int64_t b = i0; b < i1; b += kMaxBlock) k.scan(x + b, std::min(kMaxBlock, i1 - b), nullptr, r);
    } else {
      std::vector<uint32_t> sub(size_t(kSub * bins));
      std::vector<int64_t>& acc = part[size_t(t)];
      acc.assign(size_t(bins), 0);
      BinArgs a;
      a.factor = factor;
      a.first = first;
      a.last = first + double(bins - 1);
      a.bins = bins;
      a.hist = sub.data();
      for (int64_t b = i0; b < i1 && r.finite; b += kMaxBlock) {
        k.scan(x + b, std::min(kMaxBlock, i1 - b), &a, r);
        for (int s = 0; s < kSub; ++s)
          for (int64_t j = 0; j < bins; ++j) acc[size_t(j)] += sub[size_t(s * bins + j)];
        std::fill(sub.begin(), sub.end(), 0u);
      }
    }
    res[size_t(t)] = r;
  };
  if (tasks == 1)
    work(0);
  else
    lowp::ThreadPool::instance().run(int(tasks), work);
  ScanResult out;
  for (const ScanResult& r : res) {
    out.finite = out.finite && r.finite;
    out.min = std::min(out.min, r.min);
    out.max = std::max(out.max, r.max);
    out.zeros += r.zeros;
    out.neg_zeros += r.neg_zeros;
  }
  if (bins > 0 && out.finite && double(out.min) >= lo_ok && double(out.max) <= hi_ok) {
    for (const std::vector<int64_t>& acc : part)
      for (int64_t j = 0; j < bins; ++j) counts[j] += acc[size_t(j)];
    const int64_t zero_bin = std::min(bins - 1, std::max<int64_t>(0, int64_t(-first)));
    counts[zero_bin] += out.zeros;
  }
  return out;
}

using Floats = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Counts = nb::ndarray<int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Found = std::tuple<bool, float, float, int64_t, int64_t>;

Found as_tuple(const ScanResult& r) {
  return {r.finite, r.min, r.max, r.zeros, r.neg_zeros};
}

}  // namespace
}  // namespace lowp_calib

NB_MODULE(_calib, m) {
  using namespace lowp_calib;
  m.doc() = "Calibration scans: exact min/max and power-of-two-bin histograms of float32 arrays.";
  m.def("available_paths", [] {
    std::vector<std::string> out;
    for (const ScanKernels* k : paths()) out.emplace_back(k->name);
    return out;
  });
  m.def("active_path", [] { return std::string(active().name); });
  m.def(
      "set_path",
      [](const std::string& name) {
        const std::vector<const ScanKernels*> all = paths();
        for (size_t i = 0; i < all.size(); ++i)
          if (name == all[i]->name) {
            g_active.store(int(i));
            return;
          }
        throw std::invalid_argument("unknown or unavailable scan path: " + name);
      },
      "name"_a);
  m.def(
      "min_max",
      [](Floats x, int threads) {
        ScanResult r;
        {
          nb::gil_scoped_release nogil;
          r = scan(x.data(), int64_t(x.shape(0)), 0, 0.0, 0.0, nullptr, threads);
        }
        return as_tuple(r);
      },
      "x"_a, "threads"_a = 0,
      "(finite, min, max, zeros, negative zeros) of a float32 vector.");
  m.def(
      "histogram",
      [](Floats x, Counts counts, double factor, int64_t first, double lo_ok, double hi_ok,
         int threads) {
        const int64_t bins = int64_t(counts.shape(0));
        if (bins < 1) throw std::invalid_argument("counts must hold at least one bin");
        if (!(factor > 0.0) || !(factor <= std::numeric_limits<double>::max()))
          throw std::invalid_argument("factor must be positive and finite");
        constexpr int64_t kMaxIndex = int64_t(1) << 40;
        if (first < -kMaxIndex || first > kMaxIndex || bins > kMaxIndex)
          throw std::invalid_argument("first bin or bin count out of range");
        ScanResult r;
        {
          nb::gil_scoped_release nogil;
          r = scan(x.data(), int64_t(x.shape(0)), bins, factor, double(first), counts.data(),
                   threads, lo_ok, hi_ok);
        }
        return as_tuple(r);
      },
      "x"_a, "counts"_a, "factor"_a, "first"_a, "lo_ok"_a, "hi_ok"_a, "threads"_a = 0,
      "Add the histogram of a float32 vector over the bins first .. first + len(counts) - 1 "
      "of width 1 / factor to counts, only if all values are finite and within "
      "[lo_ok, hi_ok]; returns (finite, min, max, zeros, negative zeros).");
}
