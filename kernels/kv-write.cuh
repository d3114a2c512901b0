// Writing a step's keys and values into a contiguous per-layer cache, indexed by position.
// (The paged version, through slot_mapping, replaces this with the paged KV cache.)
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

// k_cache[pos[t], :, :] = k[t, :, :] and likewise for v, converted to cache_type (f32 or bf16:
// the cache is the largest buffer at long contexts, so it may be stored narrower than the
// activations). Tokens whose position is outside [0, n_ctx) are skipped.
cudaError_t kv_write(const float* k,      // [n_tokens, n_head_kv, head_dim], token stride k_stride
                     const float* v,      // [n_tokens, n_head_kv, head_dim], token stride v_stride
                     const int32_t* pos,  // [n_tokens]
                     void* k_cache,       // [n_ctx, n_head_kv, head_dim] in cache_type
                     void* v_cache,       // [n_ctx, n_head_kv, head_dim] in cache_type
                     ElemType cache_type, int n_tokens, int n_head_kv, int head_dim, int n_ctx,
                     int64_t k_stride, int64_t v_stride, cudaStream_t stream);

}  // namespace herd::kernels
