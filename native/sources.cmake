# Source list and per-file ISA flags of the native core.
nanobind_add_module(_native NB_STATIC native/bindings.cpp)
target_compile_options(_native PRIVATE -O3 -ffp-contract=off)
install(TARGETS _native LIBRARY DESTINATION lowp)
