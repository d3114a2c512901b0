// Causal grouped-query attention of one sequence over a contiguous KV cache.
// (The paged version reads the same tiles through a block table.)
#pragma once

#include <cstddef>

#include "kernels/common.cuh"

namespace herd::kernels {

// How many slices the key range is split into, so that few query rows (decode) still fill the GPU.
// 1 when the query rows alone give enough blocks (prefill). n_sm: the device's multiprocessors.
int attention_n_splits(int n_tokens, int n_head, int n_head_kv, int n_sm);

// Bytes of f32 scratch attention() needs for n_splits > 1 (0 when n_splits == 1).
size_t attention_workspace_bytes(int n_splits, int n_tokens, int n_head, int head_dim);

// out[t, h, :] = softmax(q[t, h] . K[0..pos[t]]^T * scale) . V[0..pos[t]] for query head h, reading
// KV head h / (n_head / n_head_kv). Scores, softmax and sums in f32 (online softmax over tiles of
// 32 keys); the query heads of one KV group share every K/V tile load. head_dim: 64 or 128.
// cache_type: f32 or bf16. workspace: attention_workspace_bytes(n_splits, ...) bytes, 16-byte aligned.
cudaError_t attention(const float* q,        // [n_tokens, n_head, head_dim], token stride q_stride
                      const void* k_cache,   // [n_ctx, n_head_kv, head_dim] in cache_type
                      const void* v_cache,   // [n_ctx, n_head_kv, head_dim] in cache_type
                      ElemType cache_type,
                      const int32_t* pos,    // [n_tokens]
                      float* out,            // [n_tokens, n_head * head_dim], token stride out_stride
                      int n_tokens, int n_head, int n_head_kv, int head_dim, int n_ctx, int64_t q_stride,
                      int64_t out_stride, float scale, int n_splits,
                      float* workspace,      // see attention_workspace_bytes
                      cudaStream_t stream);

}  // namespace herd::kernels
