#include "dist/thread-group.h"

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>

#include "common/check.h"

namespace herd {
namespace {

// What the ranks share: a generation-counting barrier, and each rank's posted buffers, which the
// others may touch only between the two barriers of one collective.
struct Shared {
  Shared(int size, std::chrono::milliseconds timeout)
      : size(size), timeout(timeout), arrived(size_t(size)), in(size_t(size)), bytes(size_t(size)) {}

  const int size;
  const std::chrono::milliseconds timeout;
  std::mutex mu;
  std::condition_variable cv;
  uint64_t generation = 0;
  int n_arrived = 0;
  std::vector<bool> arrived;  // this generation's
  std::string failure;        // non-empty: the group is dead

  std::vector<void*> in;       // each rank's posted buffer
  std::vector<size_t> bytes;   // and its size
  std::vector<uint8_t>* root_data = nullptr;

  [[noreturn]] void throw_failed() const {
    throw Error(ErrorKind::internal, str_cat("the tensor-parallel group stopped: ", failure));
  }

  // Waits until every rank has called sync() for this generation.
  void sync(int rank) {
    std::unique_lock lk(mu);
    if (!failure.empty()) throw_failed();
    const uint64_t gen = generation;
    arrived[size_t(rank)] = true;
    if (++n_arrived == size) {
      n_arrived = 0;
      arrived.assign(size_t(size), false);
      ++generation;
      cv.notify_all();
      return;
    }
    const auto done = [&] { return generation != gen || !failure.empty(); };
    if (rank != 0) {
      cv.wait(lk, done);
    } else if (!cv.wait_for(lk, timeout, done)) {
      std::string missing;
      for (int r = 0; r < size; ++r)
        if (!arrived[size_t(r)]) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      failure = str_cat("rank ", missing, " did not reach a collective within ", timeout.count() / 1000.0, " s");
      cv.notify_all();
    }
    if (generation == gen) throw_failed();
  }

  void abort(const std::string& why) {
    std::lock_guard lk(mu);
    if (failure.empty()) failure = why;
    cv.notify_all();
  }
};

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<Shared> g, int rank) : g_(std::move(g)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_->size; }

  void all_reduce_sum(Tensor& x) override {
    HERD_CHECK(x.dtype == DType::f32, "all_reduce_sum of ", dtype_name(x.dtype));
    post(x.data(), x.nbytes());
    g_->sync(rank_);
    check_equal_sizes("all_reduce_sum");
    // Each rank sums its own chunk over every rank's buffer, in rank order, and writes the sum back to
    // all of them: every element is summed once, so all ranks hold the same bits.
    const int64_t n = x.numel(), lo = n * rank_ / g_->size, hi = n * (rank_ + 1) / g_->size;
    for (int64_t i = lo; i < hi; ++i) {
      float s = static_cast<const float*>(g_->in[0])[i];
      for (int r = 1; r < g_->size; ++r) s += static_cast<const float*>(g_->in[size_t(r)])[i];
      for (int r = 0; r < g_->size; ++r) static_cast<float*>(g_->in[size_t(r)])[i] = s;
    }
    g_->sync(rank_);
  }

  void all_gather(const Tensor& in, Tensor& out) override {
    HERD_CHECK(in.dtype == out.dtype && out.numel() == in.numel() * g_->size, "all_gather of ",
               shape_str(in.shape), " into ", shape_str(out.shape));
    post(in.data(), in.nbytes());
    g_->sync(rank_);
    check_equal_sizes("all_gather");
    for (int r = 0; r < g_->size; ++r)
      std::memcpy(static_cast<char*>(out.data()) + size_t(r) * in.nbytes(), g_->in[size_t(r)], in.nbytes());
    g_->sync(rank_);  // no rank may reuse its input before every rank has copied it
  }

  void broadcast_host(std::vector<uint8_t>& data, int root) override {
    HERD_CHECK(root >= 0 && root < g_->size);
    if (rank_ == root) g_->root_data = &data;
    g_->sync(rank_);
    if (rank_ != root) data = *g_->root_data;
    g_->sync(rank_);
  }

  void abort(const std::string& why) override { g_->abort(why); }

 private:
  // Written before the first barrier of a collective, read after it: the barrier's mutex orders them.
  void post(void* p, size_t nbytes) {
    g_->in[size_t(rank_)] = p;
    g_->bytes[size_t(rank_)] = nbytes;
  }
  void check_equal_sizes(const char* op) const {
    for (int r = 0; r < g_->size; ++r)
      HERD_CHECK(g_->bytes[size_t(r)] == g_->bytes[0], op, ": rank ", r, " posted ", g_->bytes[size_t(r)],
                 " bytes, rank 0 ", g_->bytes[0]);
  }

  std::shared_ptr<Shared> g_;
  int rank_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> make_thread_group(int size, std::chrono::milliseconds timeout) {
  HERD_CHECK(size >= 1);
  auto shared = std::make_shared<Shared>(size, timeout);
  std::vector<std::unique_ptr<Communicator>> out;
  for (int r = 0; r < size; ++r) out.push_back(std::make_unique<ThreadCommunicator>(shared, r));
  return out;
}

}  // namespace herd
