// NCCL between the GPUs of a group, and the bootstrap star (a TCP communicator) for what is host
// memory: the step's control message and the reason the group stopped. The communicator is
// non-blocking (config.blocking = 0), so that no NCCL call can hang the rank: every call is followed
// by a wait that polls NCCL's state and the stream against a deadline, and aborts on the way out.
#include "backend/cuda/nccl-communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>
#include <thread>

#include "backend/cuda/cuda-place.h"
#include "common/check.h"
#include "dist/tcp-communicator.h"

namespace herd {
namespace {

using Clock = std::chrono::steady_clock;

// A collective of a decode step is done within microseconds to a millisecond, so the wait spins at
// first; past that something is slow or stuck, and it naps between polls instead.
constexpr auto kSpin = std::chrono::milliseconds(10);
constexpr auto kNap = std::chrono::microseconds(100);

std::string seconds(std::chrono::milliseconds t) { return str_cat(double(t.count()) / 1000.0, " s"); }

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<TcpStar> star, Backend& backend, std::chrono::milliseconds timeout)
      : place_(cuda_place(backend)), timeout_(timeout), rank_(star->rank()), size_(star->size()) {
    HERD_CHECK(timeout.count() > 0);
    const ncclUniqueId id = share_unique_id(*star);
    host_ = make_tcp_communicator(std::move(star), timeout);
    const cudaError_t e = cudaSetDevice(place_.device);  // NCCL takes the calling thread's device
    if (e != cudaSuccess) fail(str_cat("NCCL init: cannot use CUDA device ", place_.device, ": ", cudaGetErrorString(e)));
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    finish("init", ncclCommInitRankConfig(&comm_, size_, id, rank_, &config), false);
  }

  ~NcclCommunicator() override {
    if (comm_ == nullptr) return;  // aborted
    // Finalize waits for the other ranks to finish with the communicator too: bounded like the rest.
    if (wait("finalize", ncclCommFinalize(comm_), false).empty()) ncclCommDestroy(comm_);
    else ncclCommAbort(comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(Tensor& x) override {
    HERD_CHECK(x.dtype == DType::f32, "all_reduce_sum of ", dtype_name(x.dtype));
    check_alive();
    finish("all_reduce",
           ncclAllReduce(x.data(), x.data(), size_t(x.numel()), ncclFloat, ncclSum, comm_, place_.stream), true);
  }

  void all_gather(const Tensor& in, Tensor& out) override {
    HERD_CHECK(in.dtype == out.dtype && out.numel() == in.numel() * size_, "all_gather of ", shape_str(in.shape),
               " into ", shape_str(out.shape));
    check_alive();
    // As bytes: the gather moves any element type alike.
    finish("all_gather", ncclAllGather(in.data(), out.data(), in.nbytes(), ncclUint8, comm_, place_.stream), true);
  }

  void broadcast_host(std::vector<uint8_t>& data, int root) override {
    check_alive();
    try {
      host_->broadcast_host(data, root);
    } catch (const Error& e) {
      // The star failed (a rank hung up, or sent why it stopped): the GPUs' side is dead too.
      stop(e.what());
      throw;
    }
  }

  void abort(const std::string& why) override {
    if (failure_.empty()) failure_ = stopped(why);
    abort_nccl();
    host_->abort(why);  // tells the other ranks, which may be waiting for this one's next broadcast
  }

 private:
  static std::string stopped(const std::string& why) { return str_cat("the tensor-parallel group stopped: ", why); }

  // Rank 0 makes the id; every other rank waits `timeout_` for it.
  ncclUniqueId share_unique_id(TcpStar& star) const {
    ncclUniqueId id{};
    if (rank_ == 0) {
      const ncclResult_t r = ncclGetUniqueId(&id);
      if (r != ncclSuccess) {
        const std::string why = str_cat("NCCL could not make the group's unique id: ", nccl_error(r));
        star.send_error(why);
        throw Error(ErrorKind::internal, why);
      }
      for (int peer = 1; peer < size_; ++peer) star.send(peer, &id, sizeof id);
    } else {
      const std::vector<uint8_t> got = star.recv(0, sizeof id, timeout_);
      std::memcpy(&id, got.data(), sizeof id);
    }
    return id;
  }

  std::string nccl_error(ncclResult_t r) const {
    const char* last = ncclGetLastError(comm_);
    return last != nullptr && *last != '\0' ? str_cat(ncclGetErrorString(r), " (", last, ")") : ncclGetErrorString(r);
  }

  // Why the NCCL call that returned `issued` failed, or "" once it is done: NCCL has left
  // ncclInProgress (the call is posted) and, for a collective (on_stream), the stream has run
  // everything queued on it up to and including the collective.
  std::string wait(const char* what, ncclResult_t issued, bool on_stream) const {
    if (issued != ncclSuccess && issued != ncclInProgress) return str_cat("NCCL ", what, " failed: ", nccl_error(issued));
    const auto start = Clock::now();
    for (;;) {
      ncclResult_t state = ncclSuccess;
      if (const ncclResult_t r = ncclCommGetAsyncError(comm_, &state); r != ncclSuccess) state = r;
      if (state != ncclSuccess && state != ncclInProgress) return str_cat("NCCL ", what, " failed: ", nccl_error(state));
      if (state == ncclSuccess) {
        if (!on_stream) return "";
        const cudaError_t q = cudaStreamQuery(place_.stream);
        if (q == cudaSuccess) return "";
        if (q != cudaErrorNotReady)
          return str_cat("NCCL ", what, ": the GPU failed: ", cudaGetErrorName(q), " (", cudaGetErrorString(q), ")");
      }
      const auto waited = Clock::now() - start;
      if (waited >= timeout_)
        return str_cat("NCCL ", what, " did not complete within ", seconds(timeout_), ": a rank is stuck or gone");
      if (waited < kSpin) std::this_thread::yield();
      else std::this_thread::sleep_for(kNap);
    }
  }

  void finish(const char* what, ncclResult_t issued, bool on_stream) {
    if (const std::string why = wait(what, issued, on_stream); !why.empty()) fail(why);
  }

  [[noreturn]] void fail(const std::string& why) {
    abort(why);
    throw Error(ErrorKind::internal, failure_);
  }

  // The group failed outside NCCL: `message` already says so.
  void stop(const std::string& message) {
    if (failure_.empty()) failure_ = message;
    abort_nccl();
  }

  void abort_nccl() {
    if (comm_ == nullptr) return;
    ncclCommAbort(comm_);  // its status does not matter: the communicator is gone either way
    comm_ = nullptr;
  }

  void check_alive() const {
    if (!failure_.empty()) throw Error(ErrorKind::internal, failure_);
  }

  const CudaPlace place_;
  const std::chrono::milliseconds timeout_;
  const int rank_, size_;
  std::unique_ptr<Communicator> host_;  // over the bootstrap star
  ncclComm_t comm_ = nullptr;           // null once aborted
  std::string failure_;                 // the message every call throws once the group failed
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<TcpStar> bootstrap, Backend& cuda_backend,
                                                     std::chrono::milliseconds timeout) {
  return std::make_unique<NcclCommunicator>(std::move(bootstrap), cuda_backend, timeout);
}

}  // namespace herd
