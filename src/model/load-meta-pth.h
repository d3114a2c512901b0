// Meta's original checkpoints: params.json beside consolidated.00.pth ... consolidated.NN.pth, one
// torch.save state dict per model-parallel rank of Meta's reference code (1 file for 8B, 8 for
// 70B, 8 or 16 for 405B).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/shard.h"
#include "model/weights.h"

namespace herd {

// The paths of dir's consolidated.NN.pth files by rank; empty when it has none. Throws an
// invalid-input Error when a rank between 0 and the highest is missing or appears twice.
std::vector<std::string> find_meta_pth_shards(const std::string& dir);

// The weight set of those shards (c from params.json: Meta names, interleaved q/k rows). A single
// rank's tensors are views into its mapped file (q/k rows permuted into owned buffers, as for any
// interleaved checkpoint). Several ranks' parts are joined as Meta's reference model split them
// into one host copy in HostWeights::owned: wq, wk, wv, w1, w3, output and tok_embeddings by
// rows, wo and w2 by columns; the norms are replicated and taken from rank 0. Every rank must
// hold the same names with equal shapes and dtypes; errors name the file.
// only_rank: a tensor-parallel rank that is a process of its own and reads nothing but its slices
// (model/shard.h): the joined tensors keep their full shapes, but only that rank's rows or columns
// are copied, into zero pages, so each process holds its share of the model, not all of it.
HostWeights load_meta_pth_weights(const std::vector<std::string>& shards, const ModelConfig& c,
                                  const std::string& dir, const std::optional<Shard>& only_rank = std::nullopt);

}  // namespace herd
