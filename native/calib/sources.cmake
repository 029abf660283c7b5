# Source list of lowp._calib: calibration scans (exact min/max, fixed-edge histograms) with
# a scalar, an AVX2 and an AVX-512 path picked at run time (cpuid).
set(LOWP_CALIB_FLAGS -O3 -ffp-contract=off -fno-math-errno)
set(LOWP_CALIB_DIR ${CMAKE_CURRENT_LIST_DIR})

add_library(lowp_calib_avx2 OBJECT ${LOWP_CALIB_DIR}/scan_avx2.cpp)
target_compile_options(lowp_calib_avx2 PRIVATE ${LOWP_CALIB_FLAGS} -mavx2)
set_target_properties(lowp_calib_avx2 PROPERTIES POSITION_INDEPENDENT_CODE ON)
add_library(lowp_calib_avx512 OBJECT ${LOWP_CALIB_DIR}/scan_avx512.cpp)
target_compile_options(lowp_calib_avx512 PRIVATE ${LOWP_CALIB_FLAGS} -mavx2 -mavx512f)
set_target_properties(lowp_calib_avx512 PROPERTIES POSITION_INDEPENDENT_CODE ON)

nanobind_add_module(_calib NB_STATIC
  ${LOWP_CALIB_DIR}/bindings.cpp ${LOWP_CALIB_DIR}/scan_scalar.cpp
  $<TARGET_OBJECTS:lowp_calib_avx2> $<TARGET_OBJECTS:lowp_calib_avx512>)
target_compile_options(_calib PRIVATE ${LOWP_CALIB_FLAGS})
find_package(Threads REQUIRED)
target_link_libraries(_calib PRIVATE Threads::Threads)
install(TARGETS _calib LIBRARY DESTINATION lowp)
