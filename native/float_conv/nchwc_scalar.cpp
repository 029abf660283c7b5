#define LOWP_FCONV_ROWS rows_scalar
#include "nchwc_impl.h"
