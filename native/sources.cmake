# Source list and per-file ISA flags of the native core (no -march=native: each microkernel
# file gets exactly the instruction sets of its path; dispatch picks one at run time).
option(LOWP_SANITIZE "Build with AddressSanitizer and UBSan" OFF)
# Timing build for bench/amx_phases.py: switches that leave phases of the amx GEMM out (the
# outputs are then wrong); never in a normal build.
option(LOWP_AMX_PHASES "amx GEMM phase switches (timing only)" OFF)

set(LOWP_COMMON_FLAGS -O3 -ffp-contract=off -fno-math-errno)

# One object library per ISA so that each file is compiled with its own flags.
function(lowp_isa_object name src)
  add_library(${name} OBJECT ${src})
  target_compile_options(${name} PRIVATE ${LOWP_COMMON_FLAGS} ${ARGN})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  if(LOWP_SANITIZE)
    target_compile_options(${name} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer)
  endif()
endfunction()

lowp_isa_object(lowp_scalar native/kernels_scalar.cpp)
lowp_isa_object(lowp_avx2 native/kernels_avx2.cpp -mavx2 -mfma)
lowp_isa_object(lowp_avxvnni native/kernels_avxvnni.cpp -mavx2 -mfma -mavxvnni)
lowp_isa_object(lowp_avxvnni_evex native/kernels_avxvnni.cpp -mavx2 -mfma -mavx512f
                -mavx512vl -mavx512vnni -DLOWP_VNNI256_EVEX)
lowp_isa_object(lowp_vbmi native/lut_vbmi.cpp -mavx512f -mavx512bw -mavx512vbmi -mbmi2)
lowp_isa_object(lowp_qbinary_avx512 native/qbinary_avx512.cpp -mavx512f -mavx512bw -mavx512vl
                -mavx512dq -mfma)
lowp_isa_object(lowp_rnn_scalar native/recurrent_scalar.cpp)
lowp_isa_object(lowp_rnn_avx2 native/recurrent_avx2.cpp -mavx2 -mfma)
lowp_isa_object(lowp_rnn_avx512 native/recurrent_avx512.cpp -mavx2 -mfma -mavx512f -mavx512dq)
lowp_isa_object(lowp_qrnn_avx2 native/qrecurrent_avx2.cpp -mavx2 -mfma)
lowp_isa_object(lowp_qrnn_avx512 native/qrecurrent_avx512.cpp -mavx2 -mfma -mavx512f
                -mavx512bw -mavx512vl -mavx512dq -mavx512vnni)
lowp_isa_object(lowp_float_scalar native/float_scalar.cpp)
lowp_isa_object(lowp_float_avx2 native/float_avx2.cpp -mavx2 -mfma)
lowp_isa_object(lowp_float_avx512 native/float_avx512.cpp -mavx2 -mfma -mavx512f -mavx512dq)
lowp_isa_object(lowp_norm_scalar native/float_norm_scalar.cpp)
lowp_isa_object(lowp_norm_avx2 native/float_norm_avx2.cpp -mavx2 -mfma)
lowp_isa_object(lowp_norm_avx512 native/float_norm_avx512.cpp -mavx2 -mfma -mavx512f
                -mprefer-vector-width=512)
# one C library call per element, never a builtin or a vector variant (float_libm.cpp)
lowp_isa_object(lowp_libm native/float_libm.cpp -fno-builtin)
# the RNN operator: its expf / logf calls are the C library's own, likewise (float_rnn.cpp)
lowp_isa_object(lowp_float_rnn native/float_rnn.cpp -fno-builtin)
lowp_isa_object(lowp_float_rnn_avx2 native/float_rnn_avx2.cpp -mavx2)
lowp_isa_object(lowp_avx512vnni native/kernels_avx512vnni.cpp -mavx2 -mfma -mavx512f
                -mavx512bw -mavx512vl -mavx512dq -mavx512vnni)
# MatMulNBits (matmul_nbits.h): one source per path, the integer products vectorized by the
# compiler, every float step one IEEE operation
lowp_isa_object(lowp_nbits_scalar native/matmul_nbits_kernel.cpp
                -DLOWP_NBITS_NAME=nbits_rows_scalar)
lowp_isa_object(lowp_nbits_avx2 native/matmul_nbits_kernel.cpp -mavx2 -mfma
                -DLOWP_NBITS_NAME=nbits_rows_avx2)
lowp_isa_object(lowp_nbits_avx512 native/matmul_nbits_kernel.cpp -mavx2 -mfma -mavx512f
                -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mprefer-vector-width=512
                -DLOWP_NBITS_NAME=nbits_rows_avx512)
lowp_isa_object(lowp_nbits_lanes_scalar native/matmul_nbits_lanes.cpp
                -DLOWP_NBITS_LANES_NAME=nbits_lanes_scalar)
lowp_isa_object(lowp_nbits_lanes_avx2 native/matmul_nbits_lanes.cpp -mavx2 -mfma
                -DLOWP_NBITS_LANES_NAME=nbits_lanes_avx2)
lowp_isa_object(lowp_nbits_lanes_avx512 native/matmul_nbits_lanes.cpp -mavx2 -mfma -mavx512f
                -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mprefer-vector-width=512
                -DLOWP_NBITS_LANES_NAME=nbits_lanes_avx512)
# float32 bilinear Resize rows (resize.h): one source per path, the channels vectorized by the
# compiler, every float step one IEEE operation
lowp_isa_object(lowp_bilinear_scalar native/resize_float.cpp
                -DLOWP_BILINEAR_FLOAT_NAME=bilinear_float_scalar)
lowp_isa_object(lowp_bilinear_avx2 native/resize_float.cpp -mavx2
                -DLOWP_BILINEAR_FLOAT_NAME=bilinear_float_avx2)
lowp_isa_object(lowp_bilinear_avx512 native/resize_float.cpp -mavx2 -mavx512f
                -mprefer-vector-width=512 -DLOWP_BILINEAR_FLOAT_NAME=bilinear_float_avx512)
# NonMaxSuppression's overlap test (nms.h): one source per path, compare-and-blend lanes
lowp_isa_object(lowp_nms_scalar native/nms_kernel.cpp -DLOWP_NMS_NAME=nms_overlap_scalar)
lowp_isa_object(lowp_nms_avx2 native/nms_kernel.cpp -mavx2 -DLOWP_NMS_NAME=nms_overlap_avx2)
lowp_isa_object(lowp_nms_avx512 native/nms_kernel.cpp -mavx2 -mavx512f
                -DLOWP_NMS_NAME=nms_overlap_avx512)
lowp_isa_object(lowp_amx native/kernels_amx.cpp -mavx2 -mfma -mavx512f -mavx512bw -mavx512vl
                -mavx512dq -mavx512vnni -mamx-tile -mamx-int8)

nanobind_add_module(_native NB_STATIC
  native/bindings.cpp native/dispatch.cpp native/pack.cpp native/driver.cpp
  native/pool_reduce.cpp native/lut.cpp native/program.cpp native/qbinary.cpp
  $<TARGET_OBJECTS:lowp_qbinary_avx512>
  native/float_elementwise.cpp $<TARGET_OBJECTS:lowp_vbmi>
  $<TARGET_OBJECTS:lowp_scalar> $<TARGET_OBJECTS:lowp_avx2> $<TARGET_OBJECTS:lowp_avxvnni>
  $<TARGET_OBJECTS:lowp_avxvnni_evex> $<TARGET_OBJECTS:lowp_avx512vnni> $<TARGET_OBJECTS:lowp_amx>
  native/recurrent.cpp $<TARGET_OBJECTS:lowp_rnn_scalar> $<TARGET_OBJECTS:lowp_rnn_avx2>
  $<TARGET_OBJECTS:lowp_rnn_avx512> native/qrecurrent.cpp $<TARGET_OBJECTS:lowp_qrnn_avx2>
  $<TARGET_OBJECTS:lowp_qrnn_avx512>
  native/float_driver.cpp $<TARGET_OBJECTS:lowp_float_scalar>
  $<TARGET_OBJECTS:lowp_float_avx2> $<TARGET_OBJECTS:lowp_float_avx512>
  native/gather.cpp native/scatter_nd.cpp native/compare.cpp native/resize.cpp native/float_exact.cpp native/float_log.cpp
  native/float_norm.cpp $<TARGET_OBJECTS:lowp_norm_scalar> $<TARGET_OBJECTS:lowp_norm_avx2>
  $<TARGET_OBJECTS:lowp_norm_avx512> $<TARGET_OBJECTS:lowp_libm> $<TARGET_OBJECTS:lowp_float_rnn> $<TARGET_OBJECTS:lowp_float_rnn_avx2>
  native/float_reduce.cpp native/float_instance_norm.cpp native/float_attention.cpp native/float_col2im.cpp native/float_conv_transpose.cpp native/float_im2col.cpp
  native/int_matmul.cpp native/cast_half.cpp native/matmul_nbits.cpp
  native/tree_ensemble.cpp native/tree_ensemble_bindings.cpp native/ml_rows.cpp
  native/nms.cpp native/grid_sample.cpp native/roi_align.cpp
  native/detection_bindings.cpp
  $<TARGET_OBJECTS:lowp_nms_scalar> $<TARGET_OBJECTS:lowp_nms_avx2>
  $<TARGET_OBJECTS:lowp_nms_avx512>
  $<TARGET_OBJECTS:lowp_bilinear_scalar> $<TARGET_OBJECTS:lowp_bilinear_avx2>
  $<TARGET_OBJECTS:lowp_bilinear_avx512>
  $<TARGET_OBJECTS:lowp_nbits_scalar> $<TARGET_OBJECTS:lowp_nbits_avx2>
  $<TARGET_OBJECTS:lowp_nbits_avx512> $<TARGET_OBJECTS:lowp_nbits_lanes_scalar>
  $<TARGET_OBJECTS:lowp_nbits_lanes_avx2> $<TARGET_OBJECTS:lowp_nbits_lanes_avx512>)
target_compile_options(_native PRIVATE ${LOWP_COMMON_FLAGS})
find_package(Threads REQUIRED)
target_link_libraries(_native PRIVATE Threads::Threads)
if(LOWP_SANITIZE)
  target_compile_options(_native PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer)
  target_link_options(_native PRIVATE -fsanitize=address,undefined)
endif()
if(LOWP_AMX_PHASES)
  target_compile_definitions(lowp_amx PRIVATE LOWP_AMX_PHASES)
  target_compile_definitions(_native PRIVATE LOWP_AMX_PHASES)
endif()
install(TARGETS _native LIBRARY DESTINATION lowp)
