// Device memory of one tensor-parallel rank: the plan made before loading anything (weights, a
// step's workspace, the paged KV cache, on a given GPU; docs/distributed.md, "Memory planner"), and
// the KV pool the engine sizes once its weights are in place.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "herd/memory-plan.h"
#include "model/config.h"
#include "model/weights.h"

namespace herd {

// --- KV bytes and the engine's pool

// K and V of one token on one rank: 2 x n_layer x the rank's KV heads x head_dim x elem_bytes. A rank
// holds n_head_kv / tp KV heads, or one when tp exceeds n_head_kv (model/shard.h). Invalid input
// when c cannot split over tp ranks.
int64_t kv_bytes_per_token(const ModelConfig& c, int64_t elem_bytes, int tp = 1);

struct KvPool {
  int64_t bytes_per_token = 0;  // one rank's
  int32_t n_blocks = 0;         // the null block included
};
// The engine's KV pool, sized with the weights in place: kv_memory bytes when set, else
// kv_memory_fraction of free_memory (1 GiB when the backend cannot tell: free_memory <= 0), at most
// four full contexts of the model. Invalid input when the budget holds no block.
KvPool size_kv_pool(const ModelConfig& c, DType kv_dtype, int64_t free_memory, int64_t kv_memory,
                    double kv_memory_fraction, int32_t block_size, int tp = 1);

// --- The plan

// How a stored tensor packs its elements: `elems` of them in `bytes` bytes (BF16 1 and 2, Q4_0 32
// and 18). FP8 (E4M3, one byte, its per-channel scales not counted) exists for planning only.
struct StoredType {
  std::string name;  // "BF16", "Q4_K", "FP8"
  int64_t elems = 1, bytes = 1;
};
StoredType stored_type(DType t);
StoredType fp8_type();
// "bf16", "f16", "f32" or "fp8", any case; nullopt for anything else.
std::optional<StoredType> stored_type_named(std::string_view name);

// The stored type of every weight tensor. A tied LM head is the embedding: `output` is then unused.
struct WeightTypes {
  struct Layer {
    StoredType attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
  };
  StoredType tok_embd, output_norm, output;
  std::vector<Layer> layers;  // [n_layer]
};
// As the checkpoint stores them.
WeightTypes weight_types(const HostWeights& w);
// Each layer's seven matrices in `matrices`, the embedding and LM head in `embedding`, the norms in `norms`.
WeightTypes uniform_weight_types(int64_t n_layer, const StoredType& matrices, const StoredType& embedding,
                                 const StoredType& norms);

// Meta's Llama 3.1 8B, 70B and 405B (config.json of meta-llama/Llama-3.1-*): "llama-3.1-8b", ... .
std::vector<std::string> llama_preset_names();
std::optional<ModelConfig> llama_preset(std::string_view name);

struct PlanInput {
  std::string model;  // its name, as the plan reports it
  ModelConfig config;
  WeightTypes weights;
  std::string weight_dtype;  // how the weights were chosen ("as stored: BF16", "FP8"), for the report
  int n_gpus = 1;
  int tp = 1;
  int64_t gpu_memory = 0;  // bytes per GPU
  double gpu_util = 0.9;   // the share of gpu_memory the plan may use
  StoredType kv_type;
  int64_t context = 0;     // tokens of one full sequence
  int32_t block_size = 16;
  int32_t max_batch_tokens = 512;
};
// Invalid input for values out of range, a model that cannot split over tp ranks or GPUs that are
// not a whole number of tp groups.
MemoryPlan plan_rank_memory(const PlanInput& in);

}  // namespace herd
