// Microkernels, portable scalar path: compiled without any ISA flag; the reference path.
#include "common.h"
#include "requant.h"

namespace lowp {

const IsaTable kScalarTable = {"scalar", 4, 4, gemm_scalar, epilogue_scalar, dw_scalar,
                               dw_row_scalar, nullptr};

}  // namespace lowp
