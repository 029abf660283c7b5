// Microkernels, AVX-VNNI path (256-bit VEX vpdpbusd/vpdpwssd). Compiled a second time with
// LOWP_VNNI256_EVEX and AVX512-VL/VNNI flags: the same code in EVEX encoding ("avxvnni_evex"),
// which runs on AVX-512 VNNI CPUs that lack AVX-VNNI and so keeps this source tested there.
#define LOWP_VNNI256 1
#include "kernels_256.h"

namespace lowp {

#if defined(LOWP_VNNI256_EVEX)
const IsaTable kAvxVnniEvexTable = {"avxvnni_evex", kMr256, kMr256, gemm256, epilogue256, dw256, dw_row256, nullptr};
#else
const IsaTable kAvxVnniTable = {"avxvnni", kMr256, kMr256, gemm256, epilogue256, dw256, dw_row256, nullptr};
#endif

}  // namespace lowp
