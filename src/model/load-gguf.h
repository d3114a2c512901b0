// A llama.cpp GGUF file as a model: hyperparameters from the llama.* keys, RoPE scaling from
// rope_freqs (or the scaling keys), weights in their stored (possibly quantized) types with q/k
// rows permuted into the half-split order, special ids from tokenizer.ggml.*.
#pragma once

#include <string>

#include "model/model-dir.h"

namespace herd {

// Throws an invalid-input Error naming the file and the key or tensor on anything it cannot use.
// only_rank: see assemble_weights (model/weights.h).
ModelFiles load_gguf_model(const std::string& path, const std::optional<Shard>& only_rank = std::nullopt);

}  // namespace herd
