// Writing a step's keys and values into the paged KV cache of one layer, through slot_mapping.
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

// For each token t with slot = slot_mapping[t] in [0, n_blocks * block_size):
//   k_cache[slot / block_size, h, slot % block_size, :] = k[t, h, :] for every KV head h,
// and likewise for v, converted to cache_type (f32 or bf16, rounded to nearest even: the cache is
// the largest buffer at long contexts, so it may be stored narrower than the activations).
// A slot of -1 (a padding token) and any other slot outside the cache is skipped.
cudaError_t kv_write(const float* k,               // [n_tokens, n_head_kv, head_dim], token stride k_stride
                     const float* v,               // [n_tokens, n_head_kv, head_dim], token stride v_stride
                     const int32_t* slot_mapping,  // [n_tokens]
                     void* k_cache,                // [n_blocks, n_head_kv, block_size, head_dim] in cache_type
                     void* v_cache,                // [n_blocks, n_head_kv, block_size, head_dim] in cache_type
                     ElemType cache_type, int n_tokens, int n_head_kv, int head_dim, int block_size, int n_blocks,
                     int64_t k_stride, int64_t v_stride, cudaStream_t stream);

}  // namespace herd::kernels
