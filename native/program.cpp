// Driver layer: runs a Program's kernels in order (see program.h).
#include "program.h"

#include <chrono>
#include <cstring>
#include <stdexcept>

namespace lowp {

void Program::run() const {
  for (const Kernel& k : calls_) k();
}

void Program::run_timed(int64_t* ns) const {
  using clock = std::chrono::steady_clock;
  for (size_t i = 0; i < calls_.size(); ++i) {
    const auto t0 = clock::now();
    calls_[i]();
    ns[i] = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - t0).count();
  }
}

void Program::memoize_last(std::vector<std::pair<const void*, size_t>> inputs,
                           std::shared_ptr<void> keep) {
  if (calls_.empty()) throw std::invalid_argument("memoize_last needs a kernel to wrap");
  struct Seen {
    std::vector<std::vector<unsigned char>> bytes;
    bool valid = false;
  };
  auto seen = std::make_shared<Seen>();
  seen->bytes.resize(inputs.size());
  Kernel k = std::move(calls_.back());
  calls_.back() = [k = std::move(k), inputs = std::move(inputs), seen, keep] {
    bool same = seen->valid;
    for (size_t i = 0; same && i < inputs.size(); ++i)
      same = std::memcmp(seen->bytes[i].data(), inputs[i].first, inputs[i].second) == 0;
    if (same) return;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const auto* p = static_cast<const unsigned char*>(inputs[i].first);
      seen->bytes[i].assign(p, p + inputs[i].second);
    }
    k();
    seen->valid = true;
  };
}

int64_t run_loop(const LoopArgs& a, int64_t first, int64_t max_trip, bool cond) {
  size_t staged = 0;
  for (const LoopCopy& c : a.carried) staged += c.bytes;
  std::vector<unsigned char> stage(staged);
  int64_t i = first;
  for (; cond && i < max_trip; ++i) {
    if (a.iteration != nullptr) *a.iteration = i;
    if (a.cond_in != nullptr) *a.cond_in = 1;
    for (const Program* p : a.body) p->run();
    for (const int64_t* status : a.statuses)
      if (status[0] != 0) return -(i - first) - 1;
    cond = *a.cond_out != 0;
    for (const LoopCopy& c : a.scans)
      std::memcpy(static_cast<unsigned char*>(c.dst) + size_t(i - first) * c.bytes, c.src,
                  c.bytes);
    unsigned char* at = stage.data();
    for (const LoopCopy& c : a.carried) {
      std::memcpy(at, c.src, c.bytes);
      at += c.bytes;
    }
    at = stage.data();
    for (const LoopCopy& c : a.carried) {
      std::memcpy(c.dst, at, c.bytes);
      at += c.bytes;
    }
  }
  return i - first;
}

}  // namespace lowp
