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

// One copy of a Loop's iteration: `bytes` bytes from src to dst.
struct LoopCopy {
  void* dst = nullptr;
  const void* src = nullptr;
  size_t bytes = 0;
};

// A Loop whose body runs as Programs (lowp.runtime.control), its iterations run here without
// Python between them. The body reads its iteration number, condition and carried values
// from input buffers it owns and writes its outputs into buffers of its own.
struct LoopArgs {
  std::vector<const Program*> body;
  int64_t* iteration = nullptr;          // the body's iteration-number input, or null
  uint8_t* cond_in = nullptr;            // the body's condition input (a bool), or null
  const uint8_t* cond_out = nullptr;     // the body's condition output (a bool)
  std::vector<LoopCopy> carried;         // each output -> its input, after an iteration
  std::vector<LoopCopy> scans;           // iteration i's output -> dst + (i - first) * bytes
  std::vector<const int64_t*> statuses;  // kernels' status arrays: nonzero [0] stops
};

// Runs iterations first, first + 1, ... while i < max_trip and the condition (`cond`, then
// the body's) holds: set the iteration number and condition, run the body's Programs, read
// its condition, copy its scan outputs, then its carried outputs (all read before any is
// written, so outputs that are other iterations' inputs are right). Returns the number of
// iterations run, or -(that number + 1) when an iteration's status array was set (that
// iteration's outputs not copied: the caller runs the Loop again the plain way).
int64_t run_loop(const LoopArgs& a, int64_t first, int64_t max_trip, bool cond);

}  // namespace lowp
