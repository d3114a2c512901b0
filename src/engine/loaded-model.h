// What Model and Engine share: the files, a backend, the uploaded model and its public info.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "herd/model.h"
#include "model/model-dir.h"
#include "model/runner.h"

namespace herd {

struct LoadedModel {
  ModelFiles files;  // owns the mapped weights the CPU backend aliases
  std::unique_ptr<Backend> backend;  // rank 0's, under tensor parallelism
  std::unique_ptr<ModelRunner> runner;
  ModelInfo info;
  int32_t n_blocks = 0;  // KV pool size, the null block included
};

// Uploads `files` to a new backend, or with tensor_parallel > 1 to that many ranks (threads of this
// process, CPU backends sharing backend.n_threads), or as rank 0 of a process group of several ranks
// to this process's shard, the others following. n_blocks then picks the KV pool size, with the
// weights in place (rank 0's backend; every rank holds as many blocks).
std::unique_ptr<LoadedModel> load_model(ModelFiles files, const BackendOptions& backend, int tensor_parallel,
                                        const std::optional<ProcessGroup>& group, int32_t block_size,
                                        const std::function<int32_t(const ModelConfig&, Backend&)>& n_blocks);

// The in-memory random-weight model a SyntheticModelSpec describes.
ModelFiles synthetic_files(const SyntheticModelSpec& spec);

// Invalid input unless every id lies in [0, n_vocab).
void check_token_ids(const std::vector<int32_t>& ids, int64_t n_vocab);

// Why a logits row with a NaN or an infinity, the one computed at `position`, yields no token.
std::string non_finite_logits(int64_t position);

}  // namespace herd
