// Bindings layer: thin nanobind wrappers, no logic.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>
#include <string>
#include <vector>

namespace nb = nanobind;

NB_MODULE(_native, m) {
  m.def("available_paths", []() { return std::vector<std::string>{"scalar"}; });
}
