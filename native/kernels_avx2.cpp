// Microkernels, AVX2 path: exact 16-bit widening + vpmaddwd (never saturating vpmaddubsw).
#include "kernels_256.h"

namespace lowp {

const IsaTable kAvx2Table = {"avx2", kMr256, kMr256, gemm256, epilogue256, dw256, dw_row256, nullptr};

}  // namespace lowp
