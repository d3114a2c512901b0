// The canonical Llama weight set, mapped from a checkpoint's names once, at load.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/gguf-file.h"
#include "common/mmap.h"
#include "common/tensor.h"
#include "model/config.h"
#include "model/shard.h"
#include "model/safetensors.h"
#include "model/torch-checkpoint.h"

namespace herd {

struct LayerWeights {
  TensorView attn_norm;  // [n_embd]
  TensorView wq;         // [n_head * head_dim, n_embd], half-split RoPE row order
  TensorView wk;         // [n_head_kv * head_dim, n_embd], half-split RoPE row order
  TensorView wv;         // [n_head_kv * head_dim, n_embd]
  TensorView wo;         // [n_embd, n_head * head_dim]
  TensorView ffn_norm;   // [n_embd]
  TensorView w_gate;     // [n_ff, n_embd]
  TensorView w_up;       // [n_ff, n_embd]
  TensorView w_down;     // [n_embd, n_ff]
  // An FP8 KV cache's scales: the cache holds k / k_scale and v / v_scale. A checkpoint quantized
  // with a KV cache scheme stores them (self_attn.k_scale, v_scale); 1 otherwise.
  float k_scale = 1.f, v_scale = 1.f;
};

// Views into memory-mapped files, plus owned copies of the few tensors the loader had to permute.
struct HostWeights {
  TensorView tok_embd;     // [n_vocab, n_embd]
  TensorView output_norm;  // [n_embd]
  TensorView output;       // [n_vocab, n_embd]; the embedding itself when tied
  std::vector<LayerWeights> layers;

  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::vector<std::unique_ptr<TorchCheckpoint>> torch_files;
  std::unique_ptr<GgufFile> gguf;
  std::vector<std::vector<uint8_t>> owned;
  // Tensors assembled for one tensor-parallel rank: full-sized, but only that rank's slice written
  // (and resident); the rest reads as zeros.
  std::vector<std::unique_ptr<ZeroPages>> rank_slices;
};

// Which names the checkpoint uses: Hugging Face's ("model.layers.0.self_attn.q_proj.weight"),
// Meta's ("layers.0.attention.wq.weight") or llama.cpp's ("blk.0.attn_q.weight").
enum class NameScheme { hf, meta, gguf };

// Every tensor of a checkpoint: name -> (view, the file that holds it).
using TensorsByName = std::map<std::string, std::pair<TensorView, std::string>>;

// Loads every *.safetensors of `dir` (through model.safetensors.index.json when present), checks
// that each required tensor is there with the shape `c` implies, reports unexpected names, and
// permutes q/k rows when c.qk_layout is interleaved.
// only_rank (here and below): a tensor-parallel rank that is a process of its own; q/k rows that must
// be permuted are then permuted for its heads only (model/shard.h), into zero pages.
HostWeights load_safetensors_weights(const std::string& dir, const ModelConfig& c, NameScheme scheme,
                                     const std::optional<Shard>& only_rank = std::nullopt);

// Fills w's views from by_name: each required tensor must be there with the shape c implies,
// and every name must be used; all problems are reported in one invalid-input Error naming
// `source`. Permutes q/k rows (into w.owned) when c.qk_layout is interleaved.
void assemble_weights(const TensorsByName& by_name, const ModelConfig& c, NameScheme scheme,
                      const std::string& source, HostWeights& w, const std::optional<Shard>& only_rank = std::nullopt);

// Rows of a [n_heads * head_dim, cols] matrix from Meta's interleaved order to half-split order.
void permute_interleaved_to_half_split(const uint8_t* src, uint8_t* dst, int64_t n_heads, int64_t head_dim,
                                       int64_t row_bytes);

}  // namespace herd
