// ScatterND (ONNX): y = x, then the slices of y that the index tuples name take the updates'
// slices, in the order of the tuples (lowp.runtime.float_ops.ScatterND is the reference).
#pragma once
#include <cstdint>

namespace lowp {

// What an update does to y's element: written (ONNX's reduction "none"), or added to or
// multiplied into it as numpy's ufunc.at does (one element at a time, in order; integers
// wrap modulo 2^bits).
enum class ScatterReduction : int { kNone = 0, kAdd = 1, kMul = 2 };
// Element types of the reductions (kNone copies bytes of any type).
enum class ScatterType : int { kFloat32 = 0, kFloat64 = 1, kInt64 = 2, kInt32 = 3 };

struct ScatterNDArgs {
  const uint8_t* x = nullptr;        // data: the `dims` (depth of them) then slices
  const void* indices = nullptr;     // count x depth, int64 (wide) or int32
  bool wide = true;
  const uint8_t* updates = nullptr;  // count slices
  uint8_t* y = nullptr;              // x's size
  const int64_t* dims = nullptr;     // the first `depth` axes of x
  int depth = 0;
  int64_t count = 0;                 // index tuples
  int64_t slice = 0;                 // elements per slice
  int itemsize = 4;
  ScatterReduction reduction = ScatterReduction::kNone;
  ScatterType type = ScatterType::kFloat32;
};

// y = x with the updates scattered. Every index is checked first: one outside [-d, d) of its
// axis leaves y = x and sets status[0] = 1, status[1] = the index (the caller raises, or
// computes the step otherwise); else status[0] = 0. A negative index counts from the end.
void run_scatter_nd(const ScatterNDArgs& a, int64_t* status);

}  // namespace lowp
