// Causal grouped-query attention over the paged KV cache on tensor cores (FlashAttention-2's
// scheme with mma.sync BF16, sm_80 and up): the same contract as paged_attention(), for steps
// that carry prefill chunks, where the score and output products are matrix products.
#pragma once

#include <cstddef>

#include "kernels/common.cuh"

namespace herd::kernels {

// Whether flash_attention() runs on a device of this compute capability with this head_dim.
bool flash_attention_supported(int cc_major, int head_dim);

// Key splits for flash_attention() (1 when the query rows alone fill the GPU: long prefill chunks).
int flash_attention_n_splits(int n_tokens, int n_seqs, int n_head, int n_head_kv, int n_sm);

// What paged_attention() computes, with the products on tensor cores: q and each tile of
// probabilities are rounded to bf16 before their products (f32 accumulation, f32 online softmax),
// so the output is within bf16 rounding of the f32 kernel's, not equal to it. A block takes 64 query
// rows (tokens x the query heads of one KV group, so the group shares every K/V tile) against tiles
// of 64 keys, skipping the keys the causal mask hides. The cache is bf16 or fp8_e4m3 (codes widened
// exactly to bf16 in shared memory); scale and v_scale as for paged_attention(). head_dim 32, 64 or
// 128; block_size a power of two; q and out 16-byte aligned with strides that are multiples of 4.
// workspace: attention_workspace_bytes(n_splits, ...) bytes (kernels/attention-tiles.cuh).
cudaError_t flash_attention(const float* q,                  // [n_tokens, n_head, head_dim], token stride q_stride
                            const void* k_cache,             // [n_blocks, n_head_kv, block_size, head_dim]
                            const void* v_cache,             // [n_blocks, n_head_kv, block_size, head_dim]
                            const int32_t* query_start_loc,  // [n_seqs + 1]
                            const int32_t* seq_lens,         // [n_seqs]
                            const int32_t* block_table,      // [n_seqs, max_blocks]
                            float* out,                      // [n_tokens, n_head * head_dim], token stride out_stride
                            int n_tokens, int n_seqs, int n_head, int n_head_kv, int head_dim, int block_size,
                            int n_blocks, int max_blocks, int64_t q_stride, int64_t out_stride, ElemType cache_type,
                            float scale, float v_scale, int n_splits, float* workspace, cudaStream_t stream);

}  // namespace herd::kernels
