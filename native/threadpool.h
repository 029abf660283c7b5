// Driver layer: a small persistent thread pool; run(n, fn) calls fn(0..n-1) once each.
#pragma once
#include <immintrin.h>
#include <sched.h>
#include <time.h>
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
  // run out of ids it only waits for workers that are already inside fn. A worker that is
  // descheduled inside fn (another process, or another library's spinning threads, took its
  // core) would make the caller wait for a whole time slice: the caller blocks after a wait
  // of about two of its own ids (so that its core is free for the descheduled worker), and
  // when a worker reports that it lost its core inside a job, the next jobs run on the
  // caller alone for a back-off period (see note_job).
  void run(int n, const std::function<void(int)>& fn) {
    // (n may exceed the threads there are: the ids are simply taken in turn)
    if (n <= 1 || threads_.empty() || solo()) {
      for (int i = 0; i < n; ++i) fn(i);
      return;
    }
    std::lock_guard<std::mutex> serial(run_mu_);
    caller_cpu_.store(sched_getcpu(), std::memory_order_relaxed);
    fn_.store(&fn, std::memory_order_relaxed);
    n_.store(n, std::memory_order_relaxed);
    next_.store(0, std::memory_order_relaxed);
    state_.store(kOpen, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lk(mu_);
      gen_.fetch_add(1, std::memory_order_release);
    }
    if (sleepers_.load(std::memory_order_acquire) > 0) cv_.notify_all();
    const auto t0 = Clock::now();
    const int mine = take_ids(fn, n);
    // Close the job to late workers, then wait for those inside it.
    if ((state_.fetch_and(~kOpen, std::memory_order_acq_rel) & ~kOpen) != 0) {
      const auto t1 = Clock::now();
      const auto idle = [this] { return (state_.load(std::memory_order_acquire) & ~kOpen) == 0; };
      const Clock::duration patience = std::clamp<Clock::duration>(
          2 * (t1 - t0) / std::max(mine, 1) + kPause / 2, kPause / 2, kSpin);
      if (!spin_until(idle, patience, patience)) {
        std::unique_lock<std::mutex> lk(mu_);
        done_.wait(lk, idle);
      }
    }
    note_job(preempted_.exchange(false, std::memory_order_acq_rel));
    fn_.store(nullptr, std::memory_order_relaxed);
  }

 private:
  using Clock = std::chrono::steady_clock;
  // Workers waiting for the next job spin with pause for kPause (a job usually follows
  // within a few us), then with sched_yield between checks up to kSpin (a thread that shares
  // the core, such as the caller, runs first), then block on a condition variable: the gaps
  // between the steps of one model run are shorter than kSpin, and waking a blocked thread
  // costs tens of us.
  static constexpr std::chrono::microseconds kPause{50};
  static constexpr std::chrono::microseconds kSpin{400};
  // A worker whose wall time inside a job exceeds its thread CPU time by kPreempted was
  // descheduled there. The caller then runs jobs alone for a back-off period that doubles
  // (kBackoffMin .. kBackoffMax) while this keeps happening; after kCalm without it the
  // back-off starts again from kBackoffMin.
  static constexpr std::chrono::microseconds kPreempted{200};
  static constexpr std::chrono::milliseconds kBackoffMin{1}, kBackoffMax{16}, kCalm{100};
  static constexpr unsigned kOpen = 1u << 31;  // state_: open flag | workers inside the job

  int take_ids(const std::function<void(int)>& fn, int n) {
    int taken = 0;
    for (int i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n; ++taken) fn(i);
    return taken;
  }

  // Spins until pred() (pause loops, sched_yield between checks after `pause`) for at most
  // `limit`; returns pred().
  template <typename Pred>
  static bool spin_until(const Pred& pred, Clock::duration pause, Clock::duration limit) {
    const auto t0 = Clock::now();
    for (int i = 0;; ++i) {
      if (pred()) return true;
      if ((i & 15) == 15) {
        const auto dt = Clock::now() - t0;
        if (dt > limit) return pred();
        if (dt > pause) {
          sched_yield();
          continue;
        }
      }
      _mm_pause();
    }
  }

  static int64_t thread_cpu_ns() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  }

  bool solo() const {
    return Clock::now().time_since_epoch().count() < solo_until_.load(std::memory_order_relaxed);
  }

  // After each parallel job (caller, under run_mu_): `preempted` if a worker lost its core.
  void note_job(bool preempted) {
    if (!preempted) return;
    const auto now = Clock::now();
    if (now - last_preempted_ > kCalm) backoff_ = kBackoffMin;
    last_preempted_ = now;
    solo_until_.store((now + backoff_).time_since_epoch().count(), std::memory_order_relaxed);
    backoff_ = std::min<Clock::duration>(2 * backoff_, kBackoffMax);
  }

  void loop(int) {
    unsigned long long seen = 0;
    // The thread's wall and CPU clocks when it last left a job: reading the CPU clock is a
    // system call (about 1 us on a virtual machine), so it is read there, off the caller's
    // path, instead of when a job starts.
    auto mark_wall = Clock::now();
    int64_t mark_cpu = thread_cpu_ns();
    for (;;) {
      unsigned long long g = seen;
      const auto fresh = [&] { return (g = gen_.load(std::memory_order_acquire)) != seen; };
      if (!spin_until(fresh, kPause, kSpin)) {
        std::unique_lock<std::mutex> lk(mu_);
        sleepers_.fetch_add(1, std::memory_order_acq_rel);
        cv_.wait(lk, fresh);
        sleepers_.fetch_sub(1, std::memory_order_acq_rel);
      }
      seen = g;
      leave_callers_cpu();  // also when the caller took every id meanwhile
      // Enter the job only while it is open; the caller waits for everyone who entered.
      unsigned s = state_.load(std::memory_order_acquire);
      bool entered = false;
      while ((s & kOpen) && !entered)
        entered = state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel);
      if (!entered) continue;
      const auto w0 = Clock::now();
      const int64_t c0 = cpu_at_start(w0, mark_wall, mark_cpu);
      take_ids(*fn_.load(std::memory_order_relaxed), n_.load(std::memory_order_relaxed));
      const auto w1 = Clock::now();
      // Only a job longer than kPreempted can have lost kPreempted of its time.
      if (w1 - w0 > kPreempted &&
          std::chrono::duration_cast<std::chrono::nanoseconds>(w1 - w0).count() -
                  (thread_cpu_ns() - c0) >
              std::chrono::nanoseconds(kPreempted).count())
        preempted_.store(true, std::memory_order_relaxed);  // published by the fetch_sub
      if (state_.fetch_sub(1, std::memory_order_acq_rel) == 1) {  // last one out, closed
        std::lock_guard<std::mutex> lk(mu_);
        done_.notify_one();
      }
      mark_wall = Clock::now();
      mark_cpu = thread_cpu_ns();
    }
  }

  // A worker that finds itself on the CPU of the job's caller moves to another CPU it may run
  // on (it forbids itself the caller's for a moment). The scheduler sometimes wakes both on one
  // CPU and leaves them there for whole model runs: each then runs only when the other waits,
  // and the caller takes every id itself.
  void leave_callers_cpu() const {
    const int cpu = sched_getcpu();
    if (cpu < 0 || cpu != caller_cpu_.load(std::memory_order_relaxed)) return;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
    cpu_set_t others = allowed;
    CPU_CLR(cpu, &others);
    if (CPU_COUNT(&others) == 0) return;
    if (sched_setaffinity(0, sizeof others, &others) == 0)
      sched_setaffinity(0, sizeof allowed, &allowed);
  }

  // The thread's CPU clock when a job starts at `start`. A worker that found the job while
  // still spinning with pause (within kPause of its mark) was on its core all along (time it
  // lost meanwhile counts as lost in the job), so the clock is the mark's plus the wall time
  // since; a worker that yielded or blocked reads it.
  static int64_t cpu_at_start(Clock::time_point start, Clock::time_point mark_wall,
                              int64_t mark_cpu) {
    if (start - mark_wall > kPause) return thread_cpu_ns();
    return mark_cpu +
           std::chrono::duration_cast<std::chrono::nanoseconds>(start - mark_wall).count();
  }

  std::vector<std::thread> threads_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_, done_;
  std::atomic<const std::function<void(int)>*> fn_{nullptr};
  std::atomic<int> n_{0};
  std::atomic<int> next_{0};
  std::atomic<unsigned> state_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<int> caller_cpu_{-1};
  std::atomic<bool> preempted_{false};
  std::atomic<unsigned long long> gen_{0};
  std::atomic<Clock::rep> solo_until_{0};
  Clock::duration backoff_{kBackoffMin};  // caller-side state, under run_mu_
  Clock::time_point last_preempted_{};
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
