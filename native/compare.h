// Driver layer: element-wise comparisons with broadcasting (Equal, Less, Greater,
// LessOrEqual, GreaterOrEqual) of int64, int32 or float32 operands into bools, for float
// glue that builds masks and one-hot codes (lowp.runtime.program.compare_call). The C++
// comparison operators are IEEE's, as numpy's: NaN compares false, -0 equals +0. Also
// Where (a select of whole elements by a bool condition, with broadcasting), which copies
// bits only and so serves every element type of 1, 2, 4 or 8 bytes (and Not, as
// Where(x, false, true)); for floats, a -0 taken from a (or from b) is written as +0
// (float_zero: ONNX Runtime merges c ? a : 0 and !c ? b : 0 by one of them unless it equals
// 0, docs/operators.md (O345)).
#pragma once
#include <cstdint>

namespace lowp {

enum CompareOp : int { kEqual = 0, kLess = 1, kGreater = 2, kLessOrEqual = 3, kGreaterOrEqual = 4 };
enum CompareType : int { kCmpInt64 = 0, kCmpInt32 = 1, kCmpFloat32 = 2 };

struct CompareArgs {
  const void* a = nullptr;
  const void* b = nullptr;
  uint8_t* y = nullptr;              // contiguous, prod(dims) bools (0 or 1)
  int64_t dims[4] = {1, 1, 1, 1};    // iteration space, outermost first
  int64_t a_st[4] = {0, 0, 0, 0};    // element strides (0 on broadcast axes)
  int64_t b_st[4] = {0, 0, 0, 0};
  int op = kEqual;
  int type = kCmpInt64;
};

void run_compare(const CompareArgs& p, int threads);

struct WhereArgs {
  const uint8_t* c = nullptr;        // bools (0 or 1)
  const void* a = nullptr;           // taken where c
  const void* b = nullptr;           // taken elsewhere
  void* y = nullptr;                 // contiguous, prod(dims) elements
  int64_t dims[4] = {1, 1, 1, 1};    // iteration space, outermost first
  int64_t c_st[4] = {0, 0, 0, 0};    // element strides (0 on broadcast axes)
  int64_t a_st[4] = {0, 0, 0, 0};
  int64_t b_st[4] = {0, 0, 0, 0};
  int size = 4;                      // bytes per element of a, b and y: 1, 2, 4 or 8
  int float_zero = 0;                // floats: 1, a -0 taken from a is +0; 2, one from b
};

void run_where(const WhereArgs& p, int threads);

// Integer arithmetic and logic with broadcasting, numpy's on operands of one type: Add,
// Sub, Mul of int64 or int32 (two's complement wraparound, as numpy's), And, Or, Xor of
// bools (0 or 1 bytes: the bitwise operation is the logical one). The loop glue of exported
// graphs: a Loop body's iteration counter and its condition.
enum IntegerOp : int { kIntAdd = 0, kIntSub = 1, kIntMul = 2, kIntAnd = 3, kIntOr = 4,
                       kIntXor = 5 };
enum IntegerType : int { kIntInt64 = 0, kIntInt32 = 1, kIntBool = 2 };

struct IntegerBinaryArgs {
  const void* a = nullptr;
  const void* b = nullptr;
  void* y = nullptr;                 // contiguous, prod(dims) elements of the operands' type
  int64_t dims[4] = {1, 1, 1, 1};    // iteration space, outermost first
  int64_t a_st[4] = {0, 0, 0, 0};    // element strides (0 on broadcast axes)
  int64_t b_st[4] = {0, 0, 0, 0};
  int op = kIntAdd;
  int type = kIntInt64;
};

void run_integer_binary(const IntegerBinaryArgs& p, int threads);

}  // namespace lowp
