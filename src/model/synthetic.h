// Random-weight models for tests and benchmarks: in memory, or written as a safetensors directory.
#pragma once

#include <cstdint>
#include <string>

#include "model/model-dir.h"

namespace herd {

// The canonical weight set of config c, filled in parallel with deterministic pseudo-random
// values: projections uniform with standard deviation 0.02 (transformers' initialiser range),
// the embedding with deviation 1 (0.1 when tied, so logits stay varied), norm weights 1 +- 0.1.
// The same seed gives the same weights whatever the thread count. dtype: f32, f16 or bf16; or fp8,
// int4 (AWQ-style groups of 128), q8_0, q4_0, q4_1 or q6_k: the layers' matrices drawn the same way
// and quantized as herd quantize does, with BF16 embeddings and norms (and LM head for fp8/int4).
ModelFiles make_synthetic_files(const ModelConfig& c, DType dtype, uint64_t seed);

// Writes out_dir/config.json and out_dir/model.safetensors (Hugging Face names).
void write_synthetic_model(const ModelConfig& c, DType dtype, uint64_t seed, const std::string& out_dir);

}  // namespace herd
