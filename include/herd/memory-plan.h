// Will a model fit, before anything is loaded: what one tensor-parallel rank holds in GPU memory
// (its share of the weights, a step's workspace, the paged KV cache) and how many full-context
// sequences the KV cache then holds (docs/distributed.md, "Memory planner").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "herd/export.h"
#include "herd/status.h"

namespace herd {

struct MemoryPlanOptions {
  // A model directory or GGUF file (only its config and the tensors' types and shapes are read),
  // or a preset: one of memory_plan_presets().
  std::string model;
  int n_gpus = 1;           // GPUs in all: a whole number of tensor-parallel groups
  int tensor_parallel = 0;  // ranks one model is split over; 0: n_gpus
  int64_t gpu_memory = 0;   // bytes of memory per GPU
  double gpu_util = 0.9;    // the share of each GPU's memory herd may use (vLLM's gpu_memory_utilization)
  // The weights' type: "stored" (as the files store them, GGUF blocks included; BF16 for a
  // preset), or "bf16", "f16", "f32", "fp8" (every layer matrix FP8, the embedding, LM head and
  // norms BF16, as vLLM quantizes a model to FP8).
  std::string weight_dtype = "stored";
  std::string kv_dtype = "bf16";  // "bf16", "f16", "f32" or "fp8"
  int64_t context = 0;            // tokens of one full sequence; 0: the model's context
  int32_t block_size = 16;        // tokens per KV block
  int32_t max_batch_tokens = 512; // token budget of one engine step: sizes the workspace
};

// One line of the plan's arithmetic: "KV per token", "64512 B", "2 x 126 layers x 1 KV head x 128 x 2 B".
// Items of a group ("weights") follow it indented by two spaces ("  embedding").
struct MemoryPlanRow {
  std::string item, value, arithmetic;
};

// Sizes are per rank (per GPU) in bytes.
struct MemoryPlan {
  std::string model;         // the preset's name or the path
  std::string weight_dtype;  // "BF16", "FP8 (embedding, LM head, norms BF16)", "as stored: Q4_K, Q6_K"
  std::string kv_dtype;      // "BF16"
  int n_gpus = 1, tensor_parallel = 1, n_replicas = 1;  // n_replicas = n_gpus / tensor_parallel
  int64_t n_head_kv_rank = 0;  // KV heads each rank holds (one, replicated, past n_head_kv ranks)
  int64_t context = 0, block_size = 0, max_batch_tokens = 0;
  int64_t gpu_memory = 0;
  double gpu_util = 0;
  int64_t budget_bytes = 0;     // gpu_util x gpu_memory
  int64_t weight_bytes = 0;     // this rank's shard of the weights
  int64_t workspace_bytes = 0;  // an estimate: activations of one step, logits, scratch, runtime
  int64_t kv_cache_bytes = 0;   // budget - weights - workspace; negative: the shortfall
  int64_t kv_bytes_per_token = 0;
  int64_t kv_blocks = 0;        // usable blocks (the null block not counted)
  int64_t kv_tokens = 0;        // kv_blocks x block_size: the longest sequence the cache holds
  int64_t n_sequences = 0;      // full-context sequences per replica
  bool fits = false;            // at least one full-context sequence fits
  std::string verdict;          // one line: why it fits or not
  std::vector<MemoryPlanRow> rows;
};

// The plan for `options`; invalid_input names the field and the reason (a model that cannot split
// over tensor_parallel ranks, an unknown type, a context longer than the model's).
HERD_API Status plan_memory(const MemoryPlanOptions& options, MemoryPlan* out);
// "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b": Meta's published configurations.
HERD_API std::vector<std::string> memory_plan_presets();

}  // namespace herd
