// Driver layer: a small persistent thread pool; run(n, fn) calls fn(0..n-1) once each.
#pragma once
#include <immintrin.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lowp {

class ThreadPool {
 public:
  explicit ThreadPool(int workers) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this, i] { loop(i + 1); });
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Process-wide pool with one worker per extra hardware thread; never destroyed, so that
  // interpreter shutdown never waits on it. A forked child has none of the parent's threads,
  // so it gets a fresh pool (the parent's copy is abandoned).
  static ThreadPool& instance() {
    static std::mutex mu;
    static ThreadPool* pool = nullptr;
    static pid_t owner = 0;
    std::lock_guard<std::mutex> lk(mu);
    if (pool == nullptr || owner != getpid()) {
      pool = new ThreadPool(max_threads() - 1);
      owner = getpid();
    }
    return *pool;
  }
  static int max_threads() {
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : static_cast<int>(n);
  }

  // Calls fn(i) exactly once for every i in [0, n), on the caller and on up to n - 1
  // workers. Ids are handed out dynamically and the caller takes any the workers have not,
  // so a worker that is slow to wake (a busy machine) delays nothing: once the caller has
  // run out of ids it only waits for workers that are already inside fn.
  void run(int n, const std::function<void(int)>& fn) {
    // (n may exceed the threads there are: the ids are simply taken in turn)
    if (n <= 1 || threads_.empty()) {
      for (int i = 0; i < n; ++i) fn(i);
      return;
    }
    std::lock_guard<std::mutex> serial(run_mu_);
    fn_.store(&fn, std::memory_order_relaxed);
    n_.store(n, std::memory_order_relaxed);
    next_.store(0, std::memory_order_relaxed);
    state_.store(kOpen, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lk(mu_);
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    take_ids(fn, n);
    // Close the job to late workers, then wait for those inside it: a short spin (they are
    // usually finishing their last id), then sleep.
    if ((state_.fetch_and(~kOpen, std::memory_order_acq_rel) & ~kOpen) != 0) {
      const auto t0 = std::chrono::steady_clock::now();
      while ((state_.load(std::memory_order_acquire) & ~kOpen) != 0) {
        if (std::chrono::steady_clock::now() - t0 > kSpin) {
          std::unique_lock<std::mutex> lk(mu_);
          done_.wait(lk, [this] { return (state_.load(std::memory_order_acquire) & ~kOpen) == 0; });
          break;
        }
        _mm_pause();
      }
    }
    fn_.store(nullptr, std::memory_order_relaxed);
  }

 private:
  // Workers spin this long for the next job before blocking: the gaps between the
  // operators of one model run are shorter, and waking a blocked thread costs tens of us.
  static constexpr std::chrono::microseconds kSpin{400};
  static constexpr unsigned kOpen = 1u << 31;  // state_: open flag | workers inside the job

  void take_ids(const std::function<void(int)>& fn, int n) {
    for (int i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n;) fn(i);
  }

  void loop(int) {
    unsigned long long seen = 0;
    for (;;) {
      const auto t0 = std::chrono::steady_clock::now();
      unsigned long long g;
      while ((g = gen_.load(std::memory_order_acquire)) == seen) {
        if (std::chrono::steady_clock::now() - t0 > kSpin) {
          std::unique_lock<std::mutex> lk(mu_);
          cv_.wait(lk, [&] { return gen_.load(std::memory_order_acquire) != seen; });
        } else {
          _mm_pause();
        }
      }
      seen = g;
      // Enter the job only while it is open; the caller waits for everyone who entered.
      unsigned s = state_.load(std::memory_order_acquire);
      bool entered = false;
      while ((s & kOpen) && !entered)
        entered = state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel);
      if (!entered) continue;
      take_ids(*fn_.load(std::memory_order_relaxed), n_.load(std::memory_order_relaxed));
      if (state_.fetch_sub(1, std::memory_order_acq_rel) == 1) {  // last one out, closed
        std::lock_guard<std::mutex> lk(mu_);
        done_.notify_one();
      }
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_, done_;
  std::atomic<const std::function<void(int)>*> fn_{nullptr};
  std::atomic<int> n_{0};
  std::atomic<int> next_{0};
  std::atomic<unsigned> state_{0};
  std::atomic<unsigned long long> gen_{0};
};

// Element-wise, memory-bound work: split [0, n) into 64-element-aligned chunks, one per
// thread, and only when each thread gets at least `block` elements; chunk(i0, len).
template <typename Chunk>
void run_elementwise(int64_t n, int64_t block, int threads, const Chunk& chunk) {
  if (threads <= 0) threads = ThreadPool::max_threads();
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, n / block)));
  if (threads <= 1) {
    chunk(0, n);
    return;
  }
  const int64_t per = ((n + threads - 1) / threads + 63) / 64 * 64;  // threads * per >= n
  ThreadPool::instance().run(threads, [&](int t) {
    const int64_t i0 = std::min<int64_t>(n, per * t), i1 = std::min<int64_t>(n, i0 + per);
    if (i1 > i0) chunk(i0, i1 - i0);
  });
}

}  // namespace lowp
