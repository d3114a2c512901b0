#include "common/threadpool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace herd {

namespace {

void run_chunk(const std::function<void(int64_t, int64_t)>& fn, int64_t n, int index, int n_parts) {
  const int64_t begin = n * index / n_parts;
  const int64_t end = n * (index + 1) / n_parts;
  if (begin < end) fn(begin, end);
}

void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

// Long enough to bridge the single-threaded ops between two loops of a decode step; short enough
// that an idle engine's threads are asleep at once.
constexpr auto kSpin = std::chrono::microseconds(100);

}  // namespace

int ThreadPool::resolve_size(int n_threads) {
  return n_threads > 0 ? n_threads : int(std::max(1u, std::thread::hardware_concurrency()));
}

ThreadPool::ThreadPool(int n_threads) {
  n_threads = resolve_size(n_threads);
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (workers_.empty() || n <= 1) {
    if (n > 0) fn(0, n);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  pending_.store(int(workers_.size()));
  generation_.fetch_add(1);  // publishes job_ and job_n_ (sequentially consistent)
  // A worker that is going to sleep increments sleepers_ under the mutex before it checks the
  // generation, so either it sees the new one or this sees it asleep.
  if (sleepers_.load() > 0) {
    { std::lock_guard lock(mu_); }
    wake_.notify_all();
  }
  run_chunk(fn, n, 0, size());
  // The other parts take about as long as ours: spin, then give the core away if one is late
  // (an oversubscribed machine, or a worker that had to be woken).
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; pending_.load() != 0; ++i) {
    if ((i & 63) != 63 || std::chrono::steady_clock::now() - start < kSpin) cpu_relax();
    else std::this_thread::yield();
  }
  job_ = nullptr;
}

uint64_t ThreadPool::wait_for_job(uint64_t seen) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0;; ++i) {
    const uint64_t g = generation_.load();
    if (g != seen || stop_.load()) return g;
    if ((i & 63) == 63 && std::chrono::steady_clock::now() - start > kSpin) break;
    cpu_relax();
  }
  std::unique_lock lock(mu_);
  sleepers_.fetch_add(1);
  wake_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
  sleepers_.fetch_sub(1);
  return generation_.load();
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    seen = wait_for_job(seen);
    if (stop_.load()) return;
    run_chunk(*job_, job_n_, index, size());
    pending_.fetch_sub(1);
  }
}

}  // namespace herd
