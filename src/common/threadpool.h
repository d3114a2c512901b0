// A fixed pool of worker threads for data-parallel loops in the CPU backend.
//
// One decode step of a small model is hundreds of parallel loops of a few microseconds each, so
// waking sleeping threads through a condition variable for every loop would cost more than the
// loops. Workers therefore spin for a short while after each loop (about 100 microseconds) waiting
// for the next one, and only then sleep; the caller spins while the workers finish their parts.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace herd {

class ThreadPool {
 public:
  // n_threads <= 0 means one per hardware thread. The caller's thread is worker 0.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }
  // The pool size a request of n_threads gets: n_threads <= 0 is one per hardware thread.
  static int resolve_size(int n_threads);

  // Calls fn(begin, end) over disjoint chunks covering [0, n); returns when all are done. One
  // caller at a time.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker_loop(int index);
  // Waits for generation_ to move past `seen` (or stop_): spinning first, then sleeping.
  uint64_t wait_for_job(uint64_t seen);

  std::vector<std::thread> workers_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;  // published by generation_
  int64_t job_n_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};   // workers still running the current loop
  std::atomic<int> sleepers_{0};  // workers blocked on wake_
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable wake_;
};

}  // namespace herd
