// What Model and Engine share: the files, a backend, the uploaded model and its public info.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "herd/model.h"
#include "model/llama.h"
#include "model/model-dir.h"

namespace herd {

struct LoadedModel {
  ModelFiles files;  // owns the mapped weights the CPU backend aliases
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> llama;
  ModelInfo info;
  int32_t n_blocks = 0;  // KV pool size, the null block included
};

// n_blocks picks the KV pool size once the config and the backend are known.
std::unique_ptr<LoadedModel> load_model(const std::string& path, const std::string& device, int n_threads,
                                        float meta_rope_factor, int32_t block_size,
                                        const std::function<int32_t(const ModelConfig&, Backend&)>& n_blocks);

// Invalid input unless every id lies in [0, n_vocab).
void check_token_ids(const std::vector<int32_t>& ids, int64_t n_vocab);

}  // namespace herd
