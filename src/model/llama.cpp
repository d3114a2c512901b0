#include "model/llama.h"

#include "common/check.h"
#include "model/rope.h"

namespace herd {

LlamaModel::LlamaModel(const ModelConfig& c, const HostWeights& w, Backend& backend, int64_t n_ctx)
    : c_(c), be_(backend), n_ctx_(n_ctx) {
  tok_embd_ = be_.upload_weight(w.tok_embd);
  output_norm_ = be_.upload_weight(w.output_norm);
  output_ = c.tied_embeddings ? tok_embd_ : be_.upload_weight(w.output);
  const std::vector<float> inv_freq = rope_inv_freq(c);
  inv_freq_ = be_.alloc(DType::f32, {int64_t(inv_freq.size())});
  be_.write(inv_freq_, inv_freq.data(), inv_freq.size() * sizeof(float));
  for (const LayerWeights& lw : w.layers) {
    Layer l;
    l.attn_norm = be_.upload_weight(lw.attn_norm);
    l.wq = be_.upload_weight(lw.wq);
    l.wk = be_.upload_weight(lw.wk);
    l.wv = be_.upload_weight(lw.wv);
    l.wo = be_.upload_weight(lw.wo);
    l.ffn_norm = be_.upload_weight(lw.ffn_norm);
    l.w_gate = be_.upload_weight(lw.w_gate);
    l.w_up = be_.upload_weight(lw.w_up);
    l.w_down = be_.upload_weight(lw.w_down);
    l.k_cache = be_.alloc(DType::f32, {n_ctx, c.n_head_kv, c.head_dim});
    l.v_cache = be_.alloc(DType::f32, {n_ctx, c.n_head_kv, c.head_dim});
    layers_.push_back(std::move(l));
  }
}

void LlamaModel::ensure_scratch(int64_t n) {
  if (n <= s_.cap) return;
  const int64_t q_dim = c_.n_head * c_.head_dim, kv_dim = c_.n_head_kv * c_.head_dim;
  s_.ids = be_.alloc(DType::i32, {n});
  s_.pos = be_.alloc(DType::i32, {n});
  s_.x = be_.alloc(DType::f32, {n, c_.n_embd});
  s_.xn = be_.alloc(DType::f32, {n, c_.n_embd});
  s_.q = be_.alloc(DType::f32, {n, q_dim});
  s_.attn = be_.alloc(DType::f32, {n, q_dim});
  s_.k = be_.alloc(DType::f32, {n, kv_dim});
  s_.v = be_.alloc(DType::f32, {n, kv_dim});
  s_.gate = be_.alloc(DType::f32, {n, c_.n_ff});
  s_.up = be_.alloc(DType::f32, {n, c_.n_ff});
  s_.cap = n;
}

std::vector<float> LlamaModel::forward(std::span<const int32_t> ids_in, std::span<const int32_t> pos_in,
                                       std::span<const int32_t> rows_in) {
  const int64_t n = int64_t(ids_in.size()), n_rows = int64_t(rows_in.size());
  HERD_CHECK(n > 0 && pos_in.size() == ids_in.size());
  ensure_scratch(n);
  const int64_t hd = c_.head_dim, q_dim = c_.n_head * hd, kv_dim = c_.n_head_kv * hd;

  Tensor ids = view_as(s_.ids, {n}), pos = view_as(s_.pos, {n});
  be_.write(ids, ids_in.data(), ids_in.size_bytes());
  be_.write(pos, pos_in.data(), pos_in.size_bytes());
  Tensor x = view_as(s_.x, {n, c_.n_embd});        // the residual stream
  Tensor xn = view_as(s_.xn, {n, c_.n_embd});      // its normalised copy
  Tensor q = view_as(s_.q, {n, q_dim});
  Tensor k = view_as(s_.k, {n, kv_dim});
  Tensor v = view_as(s_.v, {n, kv_dim});
  Tensor attn = view_as(s_.attn, {n, q_dim});
  Tensor gate = view_as(s_.gate, {n, c_.n_ff});
  Tensor up = view_as(s_.up, {n, c_.n_ff});
  Tensor q_heads = view_as(s_.q, {n, c_.n_head, hd});
  Tensor k_heads = view_as(s_.k, {n, c_.n_head_kv, hd});

  be_.embed(tok_embd_, ids, x);
  for (Layer& l : layers_) {
    // attention block
    be_.rms_norm(x, l.attn_norm, c_.norm_eps, xn);
    be_.matmul(xn, l.wq, q);
    be_.matmul(xn, l.wk, k);
    be_.matmul(xn, l.wv, v);
    be_.rope(q_heads, pos, inv_freq_);
    be_.rope(k_heads, pos, inv_freq_);
    be_.kv_write(k_heads, view_as(v, {n, c_.n_head_kv, hd}), pos, l.k_cache, l.v_cache);
    be_.attention(q_heads, l.k_cache, l.v_cache, pos, attn);
    be_.matmul(attn, l.wo, xn);  // xn is free again: reuse it for the output projection
    be_.add(x, xn);
    // feed-forward block (SwiGLU)
    be_.rms_norm(x, l.ffn_norm, c_.norm_eps, xn);
    be_.matmul(xn, l.w_gate, gate);
    be_.matmul(xn, l.w_up, up);
    be_.silu_mul(gate, up, gate);
    be_.matmul(gate, l.w_down, xn);
    be_.add(x, xn);
  }

  // Final norm and LM head on the requested rows only.
  Tensor rows = be_.alloc(DType::i32, {n_rows});
  be_.write(rows, rows_in.data(), rows_in.size_bytes());
  Tensor picked = be_.alloc(DType::f32, {n_rows, c_.n_embd});   // [n_rows, n_embd]
  be_.embed(x, rows, picked);
  Tensor picked_n = be_.alloc(DType::f32, {n_rows, c_.n_embd});
  be_.rms_norm(picked, output_norm_, c_.norm_eps, picked_n);
  Tensor logits = be_.alloc(DType::f32, {n_rows, c_.n_vocab});  // [n_rows, n_vocab]
  be_.matmul(picked_n, output_, logits);
  std::vector<float> out(size_t(n_rows * c_.n_vocab));
  be_.read(logits, out.data(), out.size() * sizeof(float));
  return out;
}

}  // namespace herd
