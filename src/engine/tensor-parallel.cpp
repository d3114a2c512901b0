#include "engine/tensor-parallel.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <exception>

#include "common/check.h"
#include "common/threadpool.h"

namespace herd {
namespace {

// The control message of one step, as int32 words: the op, then its arguments.
enum Op : int32_t { kAllocateKv, kCopyBlocks, kForward, kForwardGreedy, kStop };

// The batch's arrays, in the order a forward message carries them (each as its length, then its values).
template <typename B>  // Batch or const Batch
auto batch_arrays(B& b) {
  return std::array{&b.ids, &b.positions, &b.slot_mapping, &b.query_start_loc, &b.seq_lens, &b.block_table,
                    &b.logits_rows};
}

std::vector<uint8_t> to_bytes(const std::vector<int32_t>& words) {
  std::vector<uint8_t> bytes(words.size() * sizeof(int32_t));
  if (!words.empty()) std::memcpy(bytes.data(), words.data(), bytes.size());
  return bytes;
}

std::vector<uint8_t> encode_forward(Op op, const Batch& batch) {
  std::vector<int32_t> w = {op, batch.max_blocks};
  for (const std::vector<int32_t>* a : batch_arrays(batch)) {
    w.push_back(int32_t(a->size()));
    w.insert(w.end(), a->begin(), a->end());
  }
  return to_bytes(w);
}

// Reads the words rank 0 wrote; a malformed message is a bug, so it is checked, not validated.
class Reader {
 public:
  explicit Reader(const std::vector<uint8_t>& bytes) : words_(bytes.size() / sizeof(int32_t)) {
    HERD_CHECK(bytes.size() % sizeof(int32_t) == 0 && !words_.empty());
    std::memcpy(words_.data(), bytes.data(), bytes.size());
  }
  int32_t next() {
    HERD_CHECK(at_ < words_.size());
    return words_[at_++];
  }
  std::vector<int32_t> rest() { return {words_.begin() + std::ptrdiff_t(at_), words_.end()}; }
  std::vector<int32_t> array() {
    const size_t n = size_t(next());
    HERD_CHECK(at_ + n <= words_.size());
    std::vector<int32_t> a(words_.begin() + std::ptrdiff_t(at_), words_.begin() + std::ptrdiff_t(at_ + n));
    at_ += n;
    return a;
  }

 private:
  std::vector<int32_t> words_;
  size_t at_ = 0;
};

}  // namespace

void follow_rank0(const ModelConfig& c, const HostWeights& w, Backend& backend, Communicator& comm) {
  try {
    LlamaModel model(c, w, backend, &comm);
    for (;;) {
      std::vector<uint8_t> message;
      comm.broadcast_host(message, 0);
      Reader r(message);
      const int32_t op = r.next();
      switch (op) {
        case kAllocateKv: {
          const int32_t n_blocks = r.next();
          model.allocate_kv(n_blocks, r.next());
          break;
        }
        case kCopyBlocks: {
          const std::vector<int32_t> flat = r.rest();
          std::vector<std::pair<int32_t, int32_t>> from_to;
          for (size_t i = 0; i + 1 < flat.size(); i += 2) from_to.emplace_back(flat[i], flat[i + 1]);
          model.copy_blocks(from_to);
          break;
        }
        case kForward:
        case kForwardGreedy: {
          Batch b;
          b.max_blocks = r.next();
          for (std::vector<int32_t>* a : batch_arrays(b)) *a = r.array();
          // Only rank 0's result is used; the others' forward passes take part in its collectives.
          if (op == kForwardGreedy) model.forward_greedy(b);
          else model.forward(b);
          break;
        }
        case kStop: return;
        default: HERD_CHECK(false, "unknown tensor-parallel op ", op);
      }
    }
  } catch (const std::exception& e) {
    // The first failure of the group is the one every rank reports; abort keeps it.
    comm.abort(str_cat("rank ", comm.rank(), " failed: ", e.what()));
    throw;
  }
}

int threads_per_rank(int n_threads, int size) {
  return std::max(1, ThreadPool::resolve_size(n_threads) / std::max(1, size));
}

TensorParallelModel::TensorParallelModel(const ModelConfig& c, const HostWeights& w, Backend& rank0_backend,
                                         const std::function<std::unique_ptr<Backend>(int)>& make_backend,
                                         std::vector<std::unique_ptr<Communicator>> comms)
    : comms_(std::move(comms)) {
  HERD_CHECK(!comms_.empty());
  // Checked here too, so that a model that cannot be split fails before any thread starts.
  if (!w.layers.empty()) check_tensor_parallel(c, int(comms_.size()), w.layers[0].wo.dtype, w.layers[0].w_down.dtype);
  for (size_t r = 1; r < comms_.size(); ++r)
    others_.emplace_back([&c, &w, comm = comms_[r].get(), make_backend] {
      try {
        const std::unique_ptr<Backend> backend = make_backend(comm->rank());
        follow_rank0(c, w, *backend, *comm);
      } catch (const std::exception& e) {
        comm->abort(str_cat("rank ", comm->rank(), " failed: ", e.what()));  // rank 0 reports it
      }
    });
  build_rank0(c, w, rank0_backend);
}

TensorParallelModel::TensorParallelModel(const ModelConfig& c, const HostWeights& w, Backend& rank0_backend,
                                         std::unique_ptr<Communicator> comm) {
  comms_.push_back(std::move(comm));
  build_rank0(c, w, rank0_backend);
}

void TensorParallelModel::build_rank0(const ModelConfig& c, const HostWeights& w, Backend& backend) {
  try {
    rank0_ = std::make_unique<LlamaModel>(c, w, backend, comms_[0].get());
  } catch (const std::exception& e) {
    comms_[0]->abort(str_cat("rank 0 failed: ", e.what()));
    for (std::thread& t : others_) t.join();
    throw;
  }
}

TensorParallelModel::~TensorParallelModel() {
  try {
    std::vector<uint8_t> stop = to_bytes({kStop});
    comms_[0]->broadcast_host(stop, 0);
  } catch (const std::exception&) {
    // The group already failed: its ranks have left their loops.
  }
  for (std::thread& t : others_) t.join();
}

template <typename F>
auto TensorParallelModel::lead(std::vector<uint8_t> message, F&& run_rank0) {
  comms_[0]->broadcast_host(message, 0);
  try {
    return run_rank0();
  } catch (const std::exception& e) {
    // The others may be waiting in a collective rank 0 will not reach. When a collective failed, the
    // group already holds the first reason, which abort keeps.
    comms_[0]->abort(str_cat("rank 0 failed: ", e.what()));
    throw;
  }
}

void TensorParallelModel::allocate_kv(int32_t n_blocks, int32_t block_size) {
  lead(to_bytes({kAllocateKv, n_blocks, block_size}), [&] { rank0_->allocate_kv(n_blocks, block_size); });
}

void TensorParallelModel::copy_blocks(const std::vector<std::pair<int32_t, int32_t>>& from_to) {
  if (from_to.empty()) return;
  std::vector<int32_t> w = {kCopyBlocks};
  for (const auto& [from, to] : from_to) w.insert(w.end(), {from, to});
  lead(to_bytes(w), [&] { rank0_->copy_blocks(from_to); });
}

std::vector<float> TensorParallelModel::forward(const Batch& batch) {
  return lead(encode_forward(kForward, batch), [&] { return rank0_->forward(batch); });
}

std::vector<int32_t> TensorParallelModel::forward_greedy(const Batch& batch) {
  return lead(encode_forward(kForwardGreedy, batch), [&] { return rank0_->forward_greedy(batch); });
}

// The other ranks need only take part in the forward pass: the greedy op spares them reading rows.
std::vector<SampledToken> TensorParallelModel::forward_sampled(const Batch& batch, std::span<const SampleSpec> specs) {
  return lead(encode_forward(kForwardGreedy, batch), [&] { return rank0_->forward_sampled(batch, specs); });
}

}  // namespace herd
