// See task_pool.h. The job is published seqlock-style: the fields, then the generation; a
// task is claimed by one compare-and-swap on (generation << 32 | next task), so a worker that
// read a stale job's fields can never claim one of its tasks (its generation no longer
// matches, or all of its tasks are claimed: a job is replaced only after it completed).
#include "task_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace lutham {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

class TaskPool {
 public:
  TaskPool() = default;
  ~TaskPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }

  void run(uint32_t workers, int64_t n, void* job, void (*task)(void*, int64_t)) {
    std::unique_lock<std::mutex> caller(caller_, std::try_to_lock);
    if (!caller.owns_lock() || n >= (int64_t{1} << 31)) {  // another call is running: inline
      for (int64_t t = 0; t < n; ++t) task(job, t);
      return;
    }
    // Only the caller (holding caller_) grows the pool; workers never touch threads_.
    while (threads_.size() < workers) {
      const uint32_t index = static_cast<uint32_t>(threads_.size());
      threads_.emplace_back([this, index] { work(index); });
    }
    allowed_.store(workers, std::memory_order_relaxed);  // published by the generation below
    const uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
    job_.store(job, std::memory_order_relaxed);
    task_.store(task, std::memory_order_relaxed);
    tasks_.store(n, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    state_.store(static_cast<uint64_t>(gen) << 32, std::memory_order_release);
    generation_.store(gen, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      wake_.notify_all();
    }
    claim_and_run(gen, n, job, task);
    while (done_.load(std::memory_order_acquire) != n) cpu_relax();
  }

 private:
  // Runs tasks of job `gen` while there are unclaimed ones.
  void claim_and_run(uint32_t gen, int64_t n, void* job, void (*task)(void*, int64_t)) {
    uint64_t s = state_.load(std::memory_order_acquire);
    for (;;) {
      if ((s >> 32) != gen || static_cast<int64_t>(s & 0xffffffffu) >= n) return;
      if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      task(job, static_cast<int64_t>(s & 0xffffffffu));
      done_.fetch_add(1, std::memory_order_acq_rel);
      s = state_.load(std::memory_order_acquire);
    }
  }

  // Worker `index` joins a job only if index < the job's worker count (allowed_).
  void work(uint32_t index) {
    uint32_t seen = 0;
    for (;;) {
      // Spin a little (the next layer's job usually follows within microseconds), then sleep.
      uint32_t gen = generation_.load(std::memory_order_acquire);
      const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
      while (gen == seen && !stop_.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 64; ++i) cpu_relax();
        gen = generation_.load(std::memory_order_acquire);
        if (gen == seen && std::chrono::steady_clock::now() > spin_until) {
          std::unique_lock<std::mutex> lock(mutex_);
          sleepers_.fetch_add(1, std::memory_order_seq_cst);
          wake_.wait(lock, [&] { return generation_.load(std::memory_order_seq_cst) != seen || stop_.load(); });
          sleepers_.fetch_sub(1, std::memory_order_seq_cst);
          gen = generation_.load(std::memory_order_acquire);
        }
      }
      if (stop_.load()) return;
      seen = gen;
      if (index >= allowed_.load(std::memory_order_relaxed)) continue;
      claim_and_run(gen, tasks_.load(std::memory_order_relaxed), job_.load(std::memory_order_relaxed),
                    task_.load(std::memory_order_relaxed));
    }
  }

  std::vector<std::thread> threads_;
  std::mutex caller_;
  std::atomic<uint32_t> generation_{0};
  std::atomic<uint64_t> state_{0};
  std::atomic<void*> job_{nullptr};
  std::atomic<void (*)(void*, int64_t)> task_{nullptr};
  std::atomic<int64_t> tasks_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<uint32_t> allowed_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace

void run_on_task_pool(uint32_t workers, int64_t n_tasks, void* job, void (*task)(void*, int64_t)) {
  static TaskPool pool;
  pool.run(workers, n_tasks, job, task);
}

}  // namespace lutham
