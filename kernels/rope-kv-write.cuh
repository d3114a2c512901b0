// RoPE on a step's queries and keys, fused with writing its keys and values into the paged KV cache
// of one layer through slot_mapping: q, k and v are each read once.
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

// For each token t, with angle_i = float(pos[t]) * inv_freq[i] rounded to f32 (as the CPU reference
// and the Python implementations do), i < head_dim / 2 = half, in the half-split (rotate_half) layout:
//   (x[i], x[i + half]) <- (x[i] cos - x[i + half] sin, x[i + half] cos + x[i] sin)
// in place on every head of q and of k. Then, when slot = slot_mapping[t] is in
// [0, n_blocks * block_size), for every KV head h:
//   k_cache[slot / block_size, h, slot % block_size, :] = rotated k[t, h, :], v_cache[...] = v[t, h, :]
// converted to cache_type (f32, bf16 or fp8_e4m3, rounded to nearest even: the cache is the largest
// buffer at long contexts), the keys divided by k_scale and the values by v_scale first (1 but for
// an FP8 cache). A slot of -1 (a padding token) and any other slot outside the cache is skipped;
// its k is still rotated.
// With n_head_kv == 0 it is RoPE on q alone: k, v, slot_mapping and the caches may then be null.
// head_dim even and at most 2048, else cudaErrorInvalidValue.
cudaError_t rope_kv_write(float* q,                     // [n_tokens, n_head, head_dim], token stride q_stride
                          float* k,                     // [n_tokens, n_head_kv, head_dim], token stride k_stride
                          const float* v,               // [n_tokens, n_head_kv, head_dim], token stride v_stride
                          const int32_t* pos,           // [n_tokens]
                          const float* inv_freq,        // [head_dim / 2], already llama3-scaled
                          const int32_t* slot_mapping,  // [n_tokens]
                          void* k_cache,                // [n_blocks, n_head_kv, block_size, head_dim] in cache_type
                          void* v_cache,                // [n_blocks, n_head_kv, block_size, head_dim] in cache_type
                          ElemType cache_type, float k_scale, float v_scale, int n_tokens, int n_head, int n_head_kv,
                          int head_dim, int block_size, int n_blocks, int64_t q_stride, int64_t k_stride,
                          int64_t v_stride, cudaStream_t stream);

}  // namespace herd::kernels
