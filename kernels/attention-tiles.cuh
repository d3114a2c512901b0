// What the two paged-attention kernels share: how a grid of row tiles maps onto the batch's
// sequences, and the merge of key splits' partial softmaxes.
#pragma once

#include <cstddef>

#include "kernels/common.cuh"

namespace herd::kernels {

// Merges n_splits partial softmaxes per (token, head) into out:
//   out = sum_s o_s e^(m_s - M) / sum_s l_s e^(m_s - M), M = max_s m_s
// with m the running maximum of a split's scores (natural log units) and l its sum of e^(score - m);
// o_s is the split's unnormalised output. A split with m = -inf is empty; a row with no keys gives 0.
cudaError_t attention_combine(const float* part_o,   // [n_splits, n_tokens, n_head, head_dim]
                              const float* part_ml,  // [n_splits, n_tokens, n_head, 2]: m, l
                              float* out,            // [n_tokens, n_head * head_dim], token stride out_stride
                              int n_splits, int n_tokens, int n_head, int head_dim, int64_t out_stride,
                              cudaStream_t stream);

// Bytes of f32 partials for n_splits > 1 (0 when n_splits == 1): part_o, then part_ml.
inline size_t attention_workspace_bytes(int n_splits, int n_tokens, int n_head, int head_dim) {
  if (n_splits <= 1) return 0;
  return size_t(n_splits) * n_tokens * n_head * (head_dim + 2) * sizeof(float);
}

// How many key splits give a grid of `tiles_per_head * n_head_kv` blocks about `target` blocks
// (1 when it has at least half of them), at most max_splits.
int attention_n_splits(int64_t tiles_per_head, int n_head_kv, int64_t target, int max_splits);

// The checks both attention launchers make of their sizes, cache type and caches: true when the
// call is well formed, with *block_shift = log2(block_size).
bool attention_args_ok(int n_tokens, int n_seqs, int n_head, int n_head_kv, int block_size, int n_blocks,
                       int max_blocks, int n_splits, const float* workspace, ElemType cache_type, const void* k_cache,
                       const void* v_cache, int* block_shift);

// Tiles of `rows` rows along the grid's x for a batch (see attention_tile_start): enough for every
// sequence's rows plus one slack tile per sequence.
inline int64_t attention_grid_tiles(int64_t n_tokens, int64_t group, int64_t n_seqs, int rows) {
  return n_tokens * group / rows + n_seqs;
}

#if defined(__CUDACC__) || defined(HERD_EMULATED_DEVICE)
// A sequence's rows are its query tokens x the query heads of one KV group, token-major, cut into
// tiles of ROWS. The first grid tile of sequence s is floor(qsl[s] * group / ROWS) + s: it grows by
// at least ceil(q_len * group / ROWS) from one sequence to the next, needs only query_start_loc (no
// prefix sum over the batch) and is strictly increasing, so a binary search finds a tile's sequence.
// The price: up to one empty tile per sequence, which exits at once.
template <int ROWS>
__device__ __forceinline__ int attention_tile_start(const int32_t* __restrict__ qsl, int s, int n_tokens, int group) {
  const int t = min(max(__ldg(qsl + s), 0), n_tokens);
  return int(int64_t(t) * group / ROWS) + s;
}

// Tile `tile` of the grid: its sequence s, the sequence's query tokens [q_begin, q_end) and which of
// its row tiles it is (negative or past the rows: a slack tile).
struct AttentionTile {
  int s, q_begin, q_end, local;
};

template <int ROWS>
__device__ __forceinline__ AttentionTile attention_find_tile(const int32_t* __restrict__ qsl, int tile, int n_tokens,
                                                              int n_seqs, int group) {
  int lo = 0;
  for (int hi = n_seqs - 1; lo < hi;) {  // the last sequence whose first tile is <= tile
    const int mid = (lo + hi + 1) >> 1;
    if (attention_tile_start<ROWS>(qsl, mid, n_tokens, group) <= tile) lo = mid; else hi = mid - 1;
  }
  AttentionTile t;
  t.s = lo;
  t.local = tile - attention_tile_start<ROWS>(qsl, lo, n_tokens, group);
  t.q_begin = min(max(__ldg(qsl + lo), 0), n_tokens);
  t.q_end = min(max(__ldg(qsl + lo + 1), t.q_begin), n_tokens);
  return t;
}
#endif

}  // namespace herd::kernels
