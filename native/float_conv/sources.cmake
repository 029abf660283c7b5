# Source list of lowp._float_conv: float32 2-D convolution in ONNX Runtime's NCHWc order
# (MLAS's NCHWc kernels), one object per instruction set, picked by the caller.
set(LOWP_FCONV_FLAGS -O3 -ffp-contract=off -fno-math-errno)
set(LOWP_FCONV_DIR ${CMAKE_CURRENT_LIST_DIR})

add_library(lowp_fconv_avx2 OBJECT ${LOWP_FCONV_DIR}/nchwc_avx2.cpp)
target_compile_options(lowp_fconv_avx2 PRIVATE ${LOWP_FCONV_FLAGS} -mavx2 -mfma)
set_target_properties(lowp_fconv_avx2 PROPERTIES POSITION_INDEPENDENT_CODE ON)
add_library(lowp_fconv_avx512 OBJECT ${LOWP_FCONV_DIR}/nchwc_avx512.cpp)
target_compile_options(lowp_fconv_avx512 PRIVATE ${LOWP_FCONV_FLAGS} -mavx2 -mfma -mavx512f)
set_target_properties(lowp_fconv_avx512 PROPERTIES POSITION_INDEPENDENT_CODE ON)

set(LOWP_FCONV_SOURCES ${LOWP_FCONV_DIR}/nchwc_run.cpp ${LOWP_FCONV_DIR}/nchwc_scalar.cpp
  $<TARGET_OBJECTS:lowp_fconv_avx2> $<TARGET_OBJECTS:lowp_fconv_avx512>)
nanobind_add_module(_float_conv NB_STATIC ${LOWP_FCONV_DIR}/bindings.cpp ${LOWP_FCONV_SOURCES})
target_compile_options(_float_conv PRIVATE ${LOWP_FCONV_FLAGS})
find_package(Threads REQUIRED)
target_link_libraries(_float_conv PRIVATE Threads::Threads)
install(TARGETS _float_conv LIBRARY DESTINATION lowp)

# The same objects in lowp._native, whose float_conv_nchwc binding is also a Program step
# (lowp.runtime.program), so that a replayed Program runs the convolution in place.
target_sources(_native PRIVATE ${LOWP_FCONV_SOURCES})
target_compile_definitions(_native PRIVATE LOWP_FLOAT_CONV_NCHWC=1)
