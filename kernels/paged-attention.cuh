// Causal grouped-query attention over the paged KV cache for a batch of sequences, each a run of
// query tokens (a prefill chunk or one decode token): one kernel serves prefill, decode and any mix.
#pragma once

#include <cstddef>

#include "kernels/common.cuh"

namespace herd::kernels {

// How many slices each sequence's key range is split into, so that few query rows (decode) still
// fill the GPU (flash-decoding); 1 when the query rows alone give enough blocks (prefill).
// Decided on the host from sizes alone: sequence lengths live on the device. n_sm: multiprocessors.
int paged_attention_n_splits(int n_tokens, int n_seqs, int n_head, int n_head_kv, int n_sm);

// For each sequence s (tokens [qsl[s], qsl[s + 1]), q_len of them, seq_len = seq_lens[s] keys),
// query j sits at position p = seq_len - q_len + j and
//   out[t, h, :] = softmax(q[t, h] . K_s[0..p]^T * scale) . V_s[0..p]
// with K_s[i] = k_cache[block_table[s, i / block_size], h / (n_head / n_head_kv), i % block_size].
// The query heads of one KV group share every K/V tile load; scores, softmax and sums are f32
// (online softmax over tiles of 32 keys). The cache is bf16 or fp8_e4m3 (cache_type); an FP8 cache
// holds codes whose values are k / k_scale and v / v_scale: pass scale = k_scale / sqrt(head_dim) and
// v_scale (1 for bf16). head_dim: 32, 64 or 128;
// block_size: a power of two. Sequences with q_len 0 are skipped; a physical block id outside
// [0, n_blocks) reads as zeros instead of faulting. workspace: attention_workspace_bytes(
// n_splits, ...) bytes (kernels/attention-tiles.cuh), 16-byte aligned.
cudaError_t paged_attention(const float* q,                // [n_tokens, n_head, head_dim], token stride q_stride
                            const void* k_cache,           // [n_blocks, n_head_kv, block_size, head_dim] cache_type
                            const void* v_cache,           // [n_blocks, n_head_kv, block_size, head_dim] cache_type
                            const int32_t* query_start_loc,  // [n_seqs + 1]
                            const int32_t* seq_lens,       // [n_seqs]
                            const int32_t* block_table,    // [n_seqs, max_blocks]
                            float* out,                    // [n_tokens, n_head * head_dim], token stride out_stride
                            int n_tokens, int n_seqs, int n_head, int n_head_kv, int head_dim, int block_size,
                            int n_blocks, int max_blocks, int64_t q_stride, int64_t out_stride, ElemType cache_type,
                            float scale, float v_scale, int n_splits,
                            float* workspace,              // see attention_workspace_bytes
                            cudaStream_t stream);

}  // namespace herd::kernels
