// Driver layer: a Program is a list of already-converted kernel invocations (closures over
// raw pointers, sizes and parameters) that run() executes in order, for lowp.runtime.program:
// one call from Python runs a whole segment of a session's steps. The closures own whatever
// keeps their memory alive (the bindings capture the arrays they were given).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace lowp {

// One kernel invocation with its arguments bound; must not throw (arguments are validated
// when it is made).
using Kernel = std::function<void()>;

class Program {
 public:
  void append(Kernel k) { calls_.push_back(std::move(k)); }
  // Runs every kernel in order (the caller has released the GIL).
  void run() const;
  // The same, writing each kernel's wall time in nanoseconds to ns[0 .. size()).
  void run_timed(int64_t* ns) const;
  size_t size() const { return calls_.size(); }

 private:
  std::vector<Kernel> calls_;
};

}  // namespace lowp
