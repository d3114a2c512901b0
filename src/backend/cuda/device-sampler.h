// The CUDA backend's Backend::sample: packs the specs for kernels/sampling.cuh, uploads them with
// their penalty tokens, runs one block per token and reads back a few bytes per token.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda-check.h"
#include "kernels/sampling.cuh"

namespace herd {

class DeviceSampler {
 public:
  explicit DeviceSampler(cudaStream_t stream) : stream_(stream) {}

  // logits: device f32 [n_rows, n_vocab], rows contiguous.
  std::vector<SampledToken> run(const float* logits, int64_t n_rows, int64_t n_vocab,
                                std::span<const SampleSpec> specs);

 private:
  cudaStream_t stream_;
  // Sampling runs outside recorded steps, so its buffers' moves make no recording stale.
  uint64_t epoch_ = 0;
  Scratch rows_{&epoch_}, penalties_{&epoch_}, work_{&epoch_}, out_{&epoch_};
  std::vector<kernels::SampleRow> host_rows_;
  std::vector<int32_t> host_penalties_;  // every spec's ids, then every spec's counts
  std::vector<kernels::SampleOut> host_out_;
};

}  // namespace herd
