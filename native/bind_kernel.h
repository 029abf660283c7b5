// def_kernel: one kernel's two Python bindings from its make_* (which checks the arguments
// and returns the invocation bound to them; the closure keeps the arrays alive): a function
// that runs it at once with the GIL released, and a Program method of the same name and
// arguments that appends it (lowp.runtime.program). Shared by the binding files.
#pragma once

#include <nanobind/nanobind.h>

#include <utility>

#include "program.h"

namespace lowp {

template <typename... Args, typename... Extra>
void def_kernel(nanobind::module_& m, nanobind::class_<Program>& program, const char* name,
                Kernel (*make)(Args...), const Extra&... extra) {
  m.def(
      name,
      [make](Args... args) {
        const Kernel k = make(std::move(args)...);
        nanobind::gil_scoped_release nogil;
        k();
      },
      extra...);
  program.def(
      name, [make](Program& p, Args... args) { p.append(make(std::move(args)...)); },
      extra...);
}

}  // namespace lowp
