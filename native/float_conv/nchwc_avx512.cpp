#define LOWP_FCONV_ROWS rows_avx512
#include "nchwc_impl.h"
