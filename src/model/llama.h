// The Llama 3.1 forward pass over the Backend interface. One readable function; the model
// never knows which backend runs it or which file format its weights came from.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"
#include "model/weights.h"

namespace herd {

class LlamaModel {
 public:
  // Uploads the weights once and allocates a contiguous KV cache of n_ctx positions.
  LlamaModel(const ModelConfig& c, const HostWeights& w, Backend& backend, int64_t n_ctx);

  // ids, pos: [n_tokens]; rows: indices into the batch whose logits are wanted.
  // Returns f32 [n_rows, n_vocab]. K/V of every token are written at its position.
  std::vector<float> forward(std::span<const int32_t> ids, std::span<const int32_t> pos,
                             std::span<const int32_t> rows);

  int64_t n_ctx() const { return n_ctx_; }
  const ModelConfig& config() const { return c_; }

 private:
  struct Layer {
    Tensor attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
    Tensor k_cache, v_cache;  // [n_ctx, n_head_kv, head_dim] f32
  };
  // Activations for up to `cap` tokens, reused across calls.
  struct Scratch {
    int64_t cap = 0;
    Tensor ids, pos;   // i32[n_tokens]
    Tensor x, xn;      // [n_tokens, n_embd]
    Tensor q, attn;    // [n_tokens, n_head * head_dim]
    Tensor k, v;       // [n_tokens, n_head_kv * head_dim]
    Tensor gate, up;   // [n_tokens, n_ff]
  };

  void ensure_scratch(int64_t n_tokens);

  ModelConfig c_;
  Backend& be_;
  int64_t n_ctx_;
  Tensor tok_embd_, output_norm_, output_, inv_freq_;
  std::vector<Layer> layers_;
  Scratch s_;
};

}  // namespace herd
