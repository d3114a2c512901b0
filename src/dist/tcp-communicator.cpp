#include "dist/tcp-communicator.h"

#include <cstring>

#include "common/check.h"

namespace herd {
namespace {

class TcpCommunicator final : public Communicator {
 public:
  TcpCommunicator(std::unique_ptr<TcpStar> star, std::chrono::milliseconds timeout)
      : star_(std::move(star)), timeout_(timeout) {}
  int rank() const override { return star_->rank(); }
  int size() const override { return star_->size(); }

  void all_reduce_sum(Tensor& x) override {
    HERD_CHECK(x.dtype == DType::f32, "all_reduce_sum of ", dtype_name(x.dtype));
    guarded([&] {
      auto* sum = static_cast<float*>(x.data());
      const int64_t n = x.numel();
      if (rank() != 0) {
        star_->send(0, sum, x.nbytes());
        receive_from_rank0(sum, x.nbytes());
        return;
      }
      for (int r = 1; r < size(); ++r) {
        const std::vector<uint8_t> part = star_->recv(r, x.nbytes(), timeout_);
        const auto* p = reinterpret_cast<const float*>(part.data());
        for (int64_t i = 0; i < n; ++i) sum[i] += p[i];
      }
      for (int r = 1; r < size(); ++r) star_->send(r, sum, x.nbytes());
    });
  }

  void all_gather(const Tensor& in, Tensor& out) override {
    HERD_CHECK(in.dtype == out.dtype && out.numel() == in.numel() * size(), "all_gather of ", shape_str(in.shape),
               " into ", shape_str(out.shape));
    guarded([&] {
      auto* all = static_cast<uint8_t*>(out.data());
      const size_t part = in.nbytes();
      if (rank() != 0) {
        star_->send(0, in.data(), part);
        receive_from_rank0(all, out.nbytes());
        return;
      }
      std::memcpy(all, in.data(), part);
      for (int r = 1; r < size(); ++r) {
        const std::vector<uint8_t> got = star_->recv(r, part, timeout_);
        std::memcpy(all + size_t(r) * part, got.data(), part);
      }
      for (int r = 1; r < size(); ++r) star_->send(r, all, out.nbytes());
    });
  }

  void broadcast_host(std::vector<uint8_t>& data, int root) override {
    HERD_CHECK(root == 0, "broadcasts come from rank 0");
    guarded([&] {
      if (rank() != 0) {
        data = star_->recv(0, SIZE_MAX, std::chrono::milliseconds(0));
        return;
      }
      for (int r = 1; r < size(); ++r) star_->send(r, data.data(), data.size());
    });
  }

  void abort(const std::string& why) override {
    if (failure_.empty()) failure_ = why;
    star_->send_error(failure_);  // the group's first failure, which every rank reports
  }

 private:
  void receive_from_rank0(void* dst, size_t nbytes) {
    const std::vector<uint8_t> got = star_->recv(0, nbytes, std::chrono::milliseconds(0));
    std::memcpy(dst, got.data(), nbytes);
  }

  // Runs a collective; once one failed, the group is dead, and every later call says why.
  template <typename F>
  void guarded(F&& run) {
    if (!failure_.empty()) throw Error(ErrorKind::internal, str_cat("the tensor-parallel group stopped: ", failure_));
    try {
      run();
    } catch (const Error& e) {
      abort(e.what());
      throw Error(ErrorKind::internal, str_cat("the tensor-parallel group stopped: ", failure_));
    }
  }

  std::unique_ptr<TcpStar> star_;
  std::chrono::milliseconds timeout_;
  std::string failure_;
};

}  // namespace

std::unique_ptr<Communicator> make_tcp_communicator(std::unique_ptr<TcpStar> star, std::chrono::milliseconds timeout) {
  return std::make_unique<TcpCommunicator>(std::move(star), timeout);
}

}  // namespace herd
