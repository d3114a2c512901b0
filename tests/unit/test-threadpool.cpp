#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "common/threadpool.h"

namespace herd {
namespace {

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  ThreadPool pool(4);
  for (int64_t n : {0, 1, 3, 4, 5, 1000, 1001}) {
    std::vector<std::atomic<int>> hits(size_t(n > 0 ? n : 1));
    pool.parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
    });
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[size_t(i)], 1) << "n=" << n << " i=" << i;
  }
}

TEST(ThreadPool, RunsManyJobsInARow) {
  ThreadPool pool(3);
  std::atomic<int64_t> sum{0};
  for (int job = 0; job < 500; ++job)
    pool.parallel_for(10, [&](int64_t b, int64_t e) { sum += e - b; });
  EXPECT_EQ(sum, 5000);
}

}  // namespace
}  // namespace herd
