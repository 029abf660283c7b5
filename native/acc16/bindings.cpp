// Driver, packing, dispatch (cpuid) and nanobind bindings of lowp._acc16; Python validates first.
#include <cpuid.h>
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "acc16.h"
#include "sparse.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace lowp_acc16 {
namespace {

bool cpu_has_avx2() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  if (!((c >> 27) & 1) || !((c >> 28) & 1)) return false;  // OSXSAVE, AVX
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & 0x6) != 0x6 || __get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, a, b, c, d);
  return (b >> 5) & 1;
}

struct Path {
  const char* name;
  GemmFn fn;
  SparseFn sparse;
};

std::vector<Path> paths() {
  std::vector<Path> out{{"scalar", gemm_scalar, sparse_scalar}};
  static const bool avx2 = cpu_has_avx2();
  if (avx2) out.push_back({"avx2", gemm_avx2, sparse_avx2});
  return out;
}

std::atomic<int> g_active{-1};  // index into paths(); -1 = best

Path active() {
  const std::vector<Path> all = paths();
  const int i = g_active.load();
  return i < 0 ? all.back() : all[i];
}

template <typename T>
using Mat = nb::ndarray<const T, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
template <typename T>
using Vec = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Out = nb::ndarray<int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

// Packed dense weights (S5 dense part) and the CSC outlier matrix (S5 outlier part).
class Acc16Gemm {
 public:
  Acc16Gemm(Mat<int8_t> dense, Vec<int32_t> col_ptr, Vec<int32_t> row_idx, Vec<int8_t> values,
            int64_t block_pairs)
      : k_(dense.shape(0)), n_(dense.shape(1)), k2_((k_ + 1) / 2),
        panels_((n_ + kPanel - 1) / kPanel), block_pairs_(block_pairs) {
    if (block_pairs < 1) throw std::invalid_argument("block_pairs must be >= 1");
    if (col_ptr.shape(0) != size_t(n_ + 1)) throw std::invalid_argument("col_ptr needs N + 1 entries");
    if (row_idx.shape(0) != values.shape(0)) throw std::invalid_argument("row_idx/values differ");
    packed_.assign(size_t(panels_ * k2_ * kPanel * 2), 0);
    const int8_t* w = dense.data();
    for (int64_t k = 0; k < k_; ++k)
      for (int64_t n = 0; n < n_; ++n) {
        const int64_t p = n / kPanel, col = n % kPanel, j = k / 2, t = k % 2;
        packed_[size_t(((p * k2_ + j) * kPanel + col) * 2 + t)] = w[k * n_ + n];
      }
    col_ptr_.assign(col_ptr.data(), col_ptr.data() + n_ + 1);
    row_idx_.assign(row_idx.data(), row_idx.data() + row_idx.shape(0));
    values_.assign(values.data(), values.data() + values.shape(0));
    std::vector<int32_t> slot(size_t(k_), -1);
    for (int32_t& r : row_idx_) {
      if (r < 0 || r >= k_) throw std::invalid_argument("outlier row index out of range");
      if (slot[size_t(r)] < 0) {
        slot[size_t(r)] = int32_t(used_.size());
        used_.push_back(r);
      }
      r = slot[size_t(r)];  // row_idx_ now indexes used_
    }
    if (col_ptr_[0] != 0 || col_ptr_[n_] != int32_t(values_.size()))
      throw std::invalid_argument("col_ptr does not match the outlier count");
  }

  // out = acc16(a, dense) (S1)-(S4) + a @ outliers in int32 (S5); no zero-point terms.
  void run(Mat<uint8_t> a, Out out) const {
    const int64_t m = a.shape(0), lda = a.shape(1);
    if (lda < 2 * k2_) throw std::invalid_argument("a needs 2 * ceil(K / 2) columns");
    if (out.shape(0) != size_t(m) || out.shape(1) != size_t(n_))
      throw std::invalid_argument("out must have shape (M, N)");
    const uint8_t* ap = a.data();
    int32_t* c = out.data();
    const Path path = active();
    {
      nb::gil_scoped_release nogil;
      std::vector<uint8_t> at(values_.empty() ? 0 : size_t(kSparseRows) * used_.size());
      std::vector<int32_t> ct(values_.empty() ? 0 : size_t(kSparseRows * n_));
      // Row blocks: the outlier part (S5') reads the block of `a` the dense part (S1)-(S4)
      // has just brought into cache.
      for (int64_t i0 = 0; i0 < m && n_ > 0; i0 += kSparseRows) {
        const int64_t rb = std::min(kSparseRows, m - i0);
        const uint8_t* ab = ap + i0 * lda;
        int32_t* cb = c + i0 * n_;
        path.fn(ab, lda, rb, packed_.data(), k2_, panels_, n_, cb, n_, block_pairs_);
        if (!values_.empty())
          path.sparse(ab, lda, rb, used_.data(), int64_t(used_.size()), n_, col_ptr_.data(),
                      row_idx_.data(), values_.data(), cb, n_, at.data(), ct.data());
      }
    }
  }

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  int64_t outliers() const { return int64_t(values_.size()); }

 private:
  int64_t k_, n_, k2_, panels_, block_pairs_;
  std::vector<int8_t> packed_;
  std::vector<int32_t> col_ptr_, row_idx_, used_;
  std::vector<int8_t> values_;
};

}  // namespace
}  // namespace lowp_acc16

NB_MODULE(_acc16, m) {
  using namespace lowp_acc16;
  m.doc() = "lowp acc16: saturating 16-bit accumulation GEMM with a sparse int32 outlier part";
  m.def("available_paths", [] {
    std::vector<std::string> out;
    for (const Path& p : paths()) out.emplace_back(p.name);
    return out;
  });
  m.def("active_path", [] { return std::string(active().name); });
  m.def("set_path", [](const std::string& name) {
    const std::vector<Path> all = paths();
    if (name == "auto") { g_active.store(-1); return; }
    for (size_t i = 0; i < all.size(); ++i)
      if (name == all[i].name) { g_active.store(int(i)); return; }
    if (name == "avx2") throw std::invalid_argument("this CPU has no AVX2");
    throw std::invalid_argument("unknown acc16 path '" + name + "' (scalar, avx2 or auto)");
  }, "name"_a);
  nb::class_<Acc16Gemm>(m, "Acc16Gemm")
      .def(nb::init<Mat<int8_t>, Vec<int32_t>, Vec<int32_t>, Vec<int8_t>, int64_t>(),
           "dense"_a, "col_ptr"_a, "row_idx"_a, "values"_a, "block_pairs"_a)
      .def("run", &Acc16Gemm::run, "a"_a, "out"_a)
      .def_prop_ro("k", &Acc16Gemm::k)
      .def_prop_ro("n", &Acc16Gemm::n)
      .def_prop_ro("outliers", &Acc16Gemm::outliers);
}
