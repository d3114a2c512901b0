// Model hyperparameters as read from files (config.json, params.json, generation_config.json).
// Validated once, then immutable. Runtime settings live elsewhere (ModelOptions).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/dtype.h"

namespace herd {

// Llama 3.1 "llama3" frequency scaling (docs/llama31.md, "RoPE scaling").
struct RopeScaling {
  float factor = 8.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int64_t original_max_position = 8192;
};

// Where q/k rows of the checkpoint sit: HF's half-split order, or Meta's interleaved pairs,
// which the loader permutes into half-split order (docs/architecture.md, "Decisions").
enum class QkLayout { half_split, interleaved };

struct ModelConfig {
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_ff = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t n_ctx_train = 0;  // max_position_embeddings
  float norm_eps = 1e-5f;
  float rope_theta = 500000.0f;
  std::optional<RopeScaling> rope_scaling;  // nullopt: plain RoPE (Llama 3.0)
  // GGUF's rope_freqs tensor, [head_dim / 2]: each frequency divided by its factor. It is how
  // llama.cpp's converter stores llama3 scaling; set instead of rope_scaling.
  std::vector<float> rope_freq_factors;
  bool tied_embeddings = false;
  DType dtype = DType::bf16;  // the checkpoint's declared dtype (informational)
  int32_t bos_id = -1;
  std::vector<int32_t> eos_ids;
  QkLayout qk_layout = QkLayout::half_split;
};

// Sampling defaults from generation_config.json; absent fields stay nullopt (greedy).
struct GenerationDefaults {
  std::optional<bool> do_sample;
  std::optional<float> temperature;
  std::optional<float> top_p;
  std::optional<int> top_k;
};

// Throws one invalid-input Error naming `source` and every problem found, "; "-separated.
ModelConfig parse_hf_config(const std::string& json_text, const std::string& source);
// Meta's params.json. It does not carry the rope factor: `rope_factor` (default 8, Llama 3.1)
// is used when use_scaled_rope is true.
ModelConfig parse_meta_params(const std::string& json_text, const std::string& source,
                              float rope_factor = 8.0f);
GenerationDefaults parse_generation_config(const std::string& json_text, const std::string& source,
                                           std::vector<int32_t>* eos_ids);
// Reports every inconsistency at once (heads that do not divide, head_dim odd, ...).
void validate_config(const ModelConfig& c, const std::string& source);
// The HF config.json (transformers 4 layout) that describes c.
std::string to_hf_config_json(const ModelConfig& c);

// A JSON config file, whole: a regular file of at most 64 MiB (common/read-file.h).
std::string read_text_file(const std::string& path);

}  // namespace herd
