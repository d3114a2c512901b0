// A tensor-parallel group led by the calling thread: rank 0 runs in the caller (the engine's worker),
// the other ranks on threads started here or in other processes, each with its own backend and shard
// of the weights. Every call sends the step to the other ranks first, then runs rank 0's part; the
// collectives inside the forward pass keep the ranks in step. A rank that fails stops the group:
// that call and every later one throw, naming the rank and its error.
#pragma once

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "dist/communicator.h"
#include "model/llama.h"
#include "model/runner.h"

namespace herd {

class TensorParallelModel final : public ModelRunner {
 public:
  // Rank 0 of a group whose other ranks are threads started here. comms: one per rank, index = rank;
  // make_backend builds each other rank's backend on its thread. w must outlive the group (the CPU
  // backend aliases it).
  TensorParallelModel(const ModelConfig& c, const HostWeights& w, Backend& rank0_backend,
                      const std::function<std::unique_ptr<Backend>(int rank)>& make_backend,
                      std::vector<std::unique_ptr<Communicator>> comms);
  // Rank 0 of a group whose other ranks run elsewhere (processes running follow_rank0).
  TensorParallelModel(const ModelConfig& c, const HostWeights& w, Backend& rank0_backend,
                      std::unique_ptr<Communicator> comm);
  ~TensorParallelModel() override;  // stops the other ranks (and waits for its threads)

  void allocate_kv(int32_t n_blocks, int32_t block_size) override;
  void copy_blocks(const std::vector<std::pair<int32_t, int32_t>>& from_to) override;
  std::vector<float> forward(const Batch& batch) override;
  std::vector<int32_t> forward_greedy(const Batch& batch) override;
  bool samples_on_device() const override { return rank0_->samples_on_device(); }
  std::vector<SampledToken> forward_sampled(const Batch& batch, std::span<const SampleSpec> specs) override;
  int64_t decode_weight_bytes() const override { return rank0_->decode_weight_bytes(); }

 private:
  // Builds rank 0's shard; on failure stops the group and its threads.
  void build_rank0(const ModelConfig& c, const HostWeights& w, Backend& backend);
  // Sends a step to ranks 1.. and runs it on rank 0; an exception fails the group before it leaves.
  template <typename F>
  auto lead(std::vector<uint8_t> message, F&& run_rank0);

  std::vector<std::unique_ptr<Communicator>> comms_;  // [0]: rank 0's; the rest: the threads'
  std::vector<std::thread> others_;
  std::unique_ptr<LlamaModel> rank0_;
};

// Any rank but 0: builds this rank's shard on `backend`, then runs what rank 0 sends until rank 0
// stops the group (returns) or the group fails (throws, after telling the others why).
void follow_rank0(const ModelConfig& c, const HostWeights& w, Backend& backend, Communicator& comm);

// The threads a CPU backend of each of `size` ranks should use when the caller asked for n_threads
// in all (0: one per hardware thread): an equal share, at least one.
int threads_per_rank(int n_threads, int size);

}  // namespace herd
