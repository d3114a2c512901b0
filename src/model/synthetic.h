// Random-weight models for tests and benchmarks: in memory, or written as a safetensors directory.
#pragma once

#include <cstdint>
#include <string>

#include "model/model-dir.h"

namespace herd {

// The canonical weight set of config c, filled in parallel with deterministic pseudo-random
// values: projections uniform with standard deviation 0.02 (transformers' initialiser range),
// the embedding with deviation 1 (0.1 when tied, so logits stay varied), norm weights 1 +- 0.1.
// The same seed gives the same weights whatever the thread count.
ModelFiles make_synthetic_files(const ModelConfig& c, DType dtype, uint64_t seed);

// Writes out_dir/config.json and out_dir/model.safetensors (Hugging Face names).
void write_synthetic_model(const ModelConfig& c, DType dtype, uint64_t seed, const std::string& out_dir);

}  // namespace herd
