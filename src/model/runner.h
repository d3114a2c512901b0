// The forward steps the engine asks of a model, whether one rank runs it (LlamaModel) or a
// tensor-parallel group led by this thread (engine/tensor-parallel.h).
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "model/batch.h"

namespace herd {

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  virtual void allocate_kv(int32_t n_blocks, int32_t block_size) = 0;
  virtual void copy_blocks(const std::vector<std::pair<int32_t, int32_t>>& from_to) = 0;
  virtual std::vector<float> forward(const Batch& batch) = 0;
  virtual std::vector<int32_t> forward_greedy(const Batch& batch) = 0;
  // Whether forward_sampled() can run: the backend picks tokens where the logits are.
  virtual bool samples_on_device() const = 0;
  // Runs one batch and picks one token per spec (SampleSpec::row: an index into batch.logits_rows),
  // so that no logits row comes back to the host.
  virtual std::vector<SampledToken> forward_sampled(const Batch& batch, std::span<const SampleSpec> specs) = 0;
  // Bytes of the weights a decode step reads (every layer's matrices and the LM head) as the
  // device holds them (quantized types that CUDA widens count as BF16), over all ranks: the
  // bandwidth bound of decoding.
  virtual int64_t decode_weight_bytes() const = 0;
};

}  // namespace herd
