// Driver layer: a Program is a list of already-converted kernel invocations (closures over
// raw pointers, sizes and parameters) that run() executes in order, for lowp.runtime.program:
// one call from Python runs a whole segment of a session's steps. The closures own whatever
// keeps their memory alive (the bindings capture the arrays they were given).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
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
  // Wraps the last kernel so that it runs only when the bytes of `inputs` (pointer, size)
  // differ from those it last ran on; else its output still holds what it wrote then (a
  // Loop body's product of operands the Loop hands on unchanged). Its output must be
  // memory no other kernel writes, apart from its inputs. `keep` holds their memory alive.
  void memoize_last(std::vector<std::pair<const void*, size_t>> inputs,
                    std::shared_ptr<void> keep);

 private:
  std::vector<Kernel> calls_;
};

}  // namespace lowp
