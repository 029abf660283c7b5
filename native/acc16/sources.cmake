# Source list of lowp._acc16: saturating 16-bit accumulation GEMM (DNNLOWP_ACC16 semantics,
# docs/quantization.md (S1)-(S6)) with a scalar and an AVX2 path picked at run time.
set(LOWP_ACC16_FLAGS -O3 -ffp-contract=off -fno-math-errno)
set(LOWP_ACC16_DIR ${CMAKE_CURRENT_LIST_DIR})

add_library(lowp_acc16_avx2 OBJECT ${LOWP_ACC16_DIR}/kernel_avx2.cpp)
target_compile_options(lowp_acc16_avx2 PRIVATE ${LOWP_ACC16_FLAGS} -mavx2)
set_target_properties(lowp_acc16_avx2 PROPERTIES POSITION_INDEPENDENT_CODE ON)

nanobind_add_module(_acc16 NB_STATIC
  ${LOWP_ACC16_DIR}/bindings.cpp ${LOWP_ACC16_DIR}/kernel_scalar.cpp
  $<TARGET_OBJECTS:lowp_acc16_avx2>)
target_compile_options(_acc16 PRIVATE ${LOWP_ACC16_FLAGS})
install(TARGETS _acc16 LIBRARY DESTINATION lowp)
