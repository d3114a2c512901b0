// Finds and reads a model directory: Hugging Face (config.json) or Meta (params.json) layout.
#pragma once

#include <optional>
#include <string>

#include "model/config.h"
#include "model/shard.h"
#include "model/weights.h"

namespace herd {

struct ModelFiles {
  std::string dir;
  ModelConfig config;
  GenerationDefaults generation;
  HostWeights weights;
};

// Format by content: a GGUF file (load-gguf.h); a directory with config.json means Hugging Face
// names and half-split q/k rows; params.json means Meta names and interleaved rows, with the weights
// in consolidated.NN.pth (load-meta-pth.h) when there are any, else in *.safetensors.
// meta_rope_factor: see parse_meta_params.
// only_rank: a process that runs one tensor-parallel rank: the tensors the loader must copy (joined
// Meta .pth parts, permuted q/k rows) are copied for that rank's slices only (load_meta_pth_weights,
// assemble_weights); the mapped ones are read only where its slices lie anyway.
ModelFiles load_model_files(const std::string& path, float meta_rope_factor = 8.0f,
                            const std::optional<Shard>& only_rank = std::nullopt);

}  // namespace herd
