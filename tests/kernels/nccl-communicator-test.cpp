// The NCCL communicator on real GPUs. A world of one rank: every collective goes through NCCL on the
// backend's stream and must leave the values a sum and a gather over one rank give. On a machine with
// two GPUs, two ranks as threads, each with its own device, joined by a TcpStar on localhost: sums,
// gathers and broadcasts against values computed here on the host, and the failures (a rank that does
// not arrive, an abort) ending both ranks with the reason, within the timeout. Skips cleanly without a
// GPU (CI), and the two-rank cases without a second one.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <exception>
#include <functional>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda-backend.h"
#include "backend/cuda/nccl-communicator.h"
#include "common/check.h"
#include "dist/tcp-star.h"

namespace herd {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

int n_gpus() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

// A port nobody listens on now (rank 0 binds it a moment later).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// One rank: its backend on GPU `rank`, and its communicator (declared second: destroyed first).
struct Rank {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Communicator> comm;

  Rank(int rank, int size, int port, milliseconds timeout) : backend(make_cuda_backend(rank)) {
    const LaunchEnv env{size, rank, rank, "127.0.0.1", port};
    comm = make_nccl_communicator(TcpStar::connect(env, "nccl-communicator-test", std::chrono::seconds(60)), *backend,
                                  timeout);
  }

  template <typename T>
  Tensor upload(DType dtype, const std::vector<T>& host) {
    Tensor t = backend->alloc(dtype, {int64_t(host.size())});
    backend->write(t, host.data(), host.size() * sizeof(T));
    return t;
  }
  template <typename T>
  std::vector<T> download(const Tensor& t) {
    std::vector<T> host(t.nbytes() / sizeof(T));
    backend->read(t, host.data(), t.nbytes());
    return host;
  }
};

// Runs body(rank) for ranks 0 and 1 on two threads; a rank's exception fails the test with its text.
void on_two_ranks(const std::function<void(int)>& body) {
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      try {
        body(r);
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < 2; ++r) EXPECT_EQ(errors[size_t(r)], "") << "rank " << r;
}

// The message of what `f` throws, or "" when it returns.
std::string thrown(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class NcclOneRank : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(NcclOneRank, CollectivesOverOneRankLeaveItsValues) {
  // A world of one needs no sockets: TcpStar::connect returns at once.
  Rank r(0, 1, 0, std::chrono::seconds(60));
  EXPECT_EQ(r.comm->rank(), 0);
  EXPECT_EQ(r.comm->size(), 1);

  std::vector<float> x(1001);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.25f * float(i) - 100.0f;
  Tensor dx = r.upload(DType::f32, x);
  r.comm->all_reduce_sum(dx);
  EXPECT_EQ(r.download<float>(dx), x);  // the sum over one rank

  const std::vector<int32_t> in = {7, -3, 1 << 30, 0, 42};
  Tensor din = r.upload(DType::i32, in);
  Tensor dout = r.backend->alloc(DType::i32, {1, int64_t(in.size())});
  r.comm->all_gather(din, dout);
  EXPECT_EQ(r.download<int32_t>(dout), in);

  std::vector<uint8_t> message = {1, 2, 3};
  r.comm->broadcast_host(message, 0);
  EXPECT_EQ(message, (std::vector<uint8_t>{1, 2, 3}));
}

TEST_F(NcclOneRank, AbortStopsEveryLaterCallWithTheReason) {
  Rank r(0, 1, 0, std::chrono::seconds(60));
  Tensor x = r.upload(DType::f32, std::vector<float>{1, 2});
  Tensor gathered = r.backend->alloc(DType::f32, {1, 2});
  r.comm->abort("rank 0 failed: the test stops it");
  std::vector<uint8_t> message = {1};
  for (const std::string& what : {thrown([&] { r.comm->all_reduce_sum(x); }),
                                  thrown([&] { r.comm->all_gather(x, gathered); }),
                                  thrown([&] { r.comm->broadcast_host(message, 0); })})
    EXPECT_EQ(what, "the tensor-parallel group stopped: rank 0 failed: the test stops it");
}

class NcclTwoRanks : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const int n = n_gpus(); n < 2) GTEST_SKIP() << "needs two CUDA devices, found " << n;
    port_ = free_port();
  }
  int port_ = 0;
};

TEST_F(NcclTwoRanks, CollectivesGiveTheHostsSumsAndGathers) {
  // Random values: over two ranks each element's sum is one rounding of x0 + x1 whatever the order,
  // so the host computes it exactly. An odd size, large enough for NCCL to split over channels.
  constexpr size_t n = (size_t(1) << 20) + 3;
  std::vector<std::vector<float>> x(2, std::vector<float>(n));
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 10.0f);
  for (auto& v : x)
    for (float& e : v) e = normal(rng);
  std::vector<float> sum(n);
  for (size_t i = 0; i < n; ++i) sum[i] = x[0][i] + x[1][i];

  constexpr int64_t m = 1001;  // gathered: rank r's values are r * 100000 + i
  std::vector<int32_t> gathered(2 * m);
  for (int64_t i = 0; i < 2 * m; ++i) gathered[size_t(i)] = int32_t((i / m) * 100000 + i % m);

  std::vector<uint8_t> message(3000);
  for (size_t i = 0; i < message.size(); ++i) message[i] = uint8_t(i * 31 + 5);

  on_two_ranks([&](int rank) {
    Rank r(rank, 2, port_, std::chrono::seconds(60));
    EXPECT_EQ(r.comm->rank(), rank);
    EXPECT_EQ(r.comm->size(), 2);

    Tensor dx = r.upload(DType::f32, x[size_t(rank)]);
    r.comm->all_reduce_sum(dx);
    const std::vector<float> got = r.download<float>(dx);
    size_t n_wrong = 0;
    for (size_t i = 0; i < n; ++i) n_wrong += std::memcmp(&got[i], &sum[i], sizeof(float)) != 0;
    EXPECT_EQ(n_wrong, 0u) << "rank " << rank << ": elements whose bits differ from x0 + x1";

    const std::vector<int32_t> mine(gathered.begin() + rank * m, gathered.begin() + (rank + 1) * m);
    Tensor din = r.upload(DType::i32, mine);
    Tensor dout = r.backend->alloc(DType::i32, {2, m});
    r.comm->all_gather(din, dout);
    EXPECT_EQ(r.download<int32_t>(dout), gathered) << "rank " << rank;

    std::vector<uint8_t> data = rank == 0 ? message : std::vector<uint8_t>{9, 9};
    r.comm->broadcast_host(data, 0);
    EXPECT_EQ(data, message) << "rank " << rank;
    data = rank == 0 ? std::vector<uint8_t>{} : std::vector<uint8_t>{9};
    r.comm->broadcast_host(data, 0);
    EXPECT_TRUE(data.empty()) << "rank " << rank;
  });
}

TEST_F(NcclTwoRanks, ARankThatDoesNotArriveFailsBothWithinTheTimeout) {
  const milliseconds timeout(2000);
  std::promise<void> rank0_failed;
  on_two_ranks([&](int rank) {
    Rank r(rank, 2, port_, timeout);
    Tensor x = r.upload(DType::f32, std::vector<float>(64, 1.0f));
    if (rank == 0) {
      const auto start = Clock::now();
      const std::string what = thrown([&] { r.comm->all_reduce_sum(x); });
      const auto waited = Clock::now() - start;
      rank0_failed.set_value();
      EXPECT_EQ(what,
                "the tensor-parallel group stopped: NCCL all_reduce did not complete within 2 s: a rank is stuck or gone");
      EXPECT_GE(waited, timeout);
      EXPECT_LT(waited, timeout + std::chrono::seconds(5));
      // The group is dead: a later call says why at once.
      EXPECT_EQ(thrown([&] { r.comm->all_reduce_sum(x); }), what);
    } else {
      // Rank 1 was busy elsewhere; when it comes back for the next step, rank 0 has told it why the
      // group stopped.
      rank0_failed.get_future().wait();
      std::vector<uint8_t> message;
      EXPECT_EQ(thrown([&] { r.comm->broadcast_host(message, 0); }),
                "the tensor-parallel group stopped: NCCL all_reduce did not complete within 2 s: a rank is stuck or gone");
    }
  });
}

TEST_F(NcclTwoRanks, AFollowerWaitingForABroadcastLearnsWhyRank0Stopped) {
  on_two_ranks([&](int rank) {
    Rank r(rank, 2, port_, std::chrono::seconds(60));
    if (rank == 0) {
      std::this_thread::sleep_for(milliseconds(200));  // rank 1 is waiting by then
      r.comm->abort("rank 0 failed: the test stops it");
    } else {
      std::vector<uint8_t> message;
      EXPECT_EQ(thrown([&] { r.comm->broadcast_host(message, 0); }),
                "the tensor-parallel group stopped: rank 0 failed: the test stops it");
    }
  });
}

TEST_F(NcclTwoRanks, ARankInACollectiveWhenTheOtherAbortsFailsWithinTheTimeout) {
  const milliseconds timeout(2000);
  on_two_ranks([&](int rank) {
    Rank r(rank, 2, port_, timeout);
    Tensor x = r.upload(DType::f32, std::vector<float>(64, 1.0f));
    if (rank == 0) {
      r.comm->abort("rank 0 failed: the test stops it");
      EXPECT_EQ(thrown([&] { r.comm->all_reduce_sum(x); }),
                "the tensor-parallel group stopped: rank 0 failed: the test stops it");
    } else {
      // Rank 0's resources are gone: NCCL reports an error, or the wait runs out; either way within
      // the timeout and naming the collective.
      const auto start = Clock::now();
      const std::string what = thrown([&] { r.comm->all_reduce_sum(x); });
      EXPECT_TRUE(what.starts_with("the tensor-parallel group stopped: NCCL all_reduce ")) << what;
      EXPECT_LT(Clock::now() - start, timeout + std::chrono::seconds(5));
    }
  });
}

}  // namespace
}  // namespace herd
