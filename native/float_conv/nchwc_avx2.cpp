#define LOWP_FCONV_ROWS rows_avx2
#include "nchwc_impl.h"
