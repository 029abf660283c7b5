// Driver layer: a small persistent thread pool; run(n, fn) calls fn(0..n-1), fn(0) on the caller.
#pragma once
#include <immintrin.h>
#include <unistd.h>

#include <atomic>
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

  void run(int n, const std::function<void(int)>& fn) {
    if (n > static_cast<int>(threads_.size()) + 1) n = static_cast<int>(threads_.size()) + 1;
    if (n <= 1) {
      fn(0);
      return;
    }
    std::lock_guard<std::mutex> serial(run_mu_);
    fn_.store(&fn, std::memory_order_relaxed);
    n_.store(n, std::memory_order_relaxed);
    pending_.store(n - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(mu_);
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    fn(0);
    // Short spin (jobs are often sub-millisecond), then sleep until the workers are done.
    const auto t0 = std::chrono::steady_clock::now();
    while (pending_.load(std::memory_order_acquire) != 0) {
      if (std::chrono::steady_clock::now() - t0 > kSpin) {
        std::unique_lock<std::mutex> lk(mu_);
        done_.wait(lk, [this] { return pending_.load(std::memory_order_acquire) == 0; });
        break;
      }
      _mm_pause();
    }
    fn_.store(nullptr, std::memory_order_relaxed);
  }

 private:
  static constexpr std::chrono::microseconds kSpin{50};

  void loop(int id) {
    unsigned long long seen = 0;
    for (;;) {
      // Spin briefly for back-to-back jobs, then block.
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
      if (id >= n_.load(std::memory_order_relaxed)) continue;
      (*fn_.load(std::memory_order_relaxed))(id);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
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
  std::atomic<int> pending_{0};
  std::atomic<unsigned long long> gen_{0};
};

}  // namespace lowp
