#include "kernels/paged-attention.cuh"

#include <algorithm>
#include <climits>
#include <cmath>

#include "kernels/attention-tiles.cuh"
#include "kernels/paged-attention-kernel.cuh"

namespace herd::kernels {
namespace {

using namespace paged;

constexpr int kMaxSplits = 128;
template <int HEAD_DIM, typename TC>
cudaError_t launch(const float* q, const void* k_cache, const void* v_cache, const int32_t* qsl,
                   const int32_t* seq_lens, const int32_t* block_table, float* out, int n_tokens, int n_seqs,
                   int n_head, int n_head_kv, int block_shift, int n_blocks, int max_blocks, int64_t q_stride,
                   int64_t out_stride, float scale, float v_scale, int n_splits, float* workspace,
                   cudaStream_t stream) {
  const int64_t n_tiles = attention_grid_tiles(n_tokens, n_head / n_head_kv, n_seqs, kRowsPerBlock);
  if (n_tiles > INT_MAX) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(n_head_kv), static_cast<unsigned>(n_splits));
  float* part_o = workspace;
  float* part_ml = n_splits > 1 ? workspace + size_t(n_splits) * n_tokens * n_head * HEAD_DIM : nullptr;
  paged_attention_kernel<HEAD_DIM, TC><<<grid, kThreads, sizeof(Smem<HEAD_DIM>), stream>>>(
      q, static_cast<const TC*>(k_cache), static_cast<const TC*>(v_cache), qsl, seq_lens, block_table, out, part_o,
      part_ml, n_tokens, n_seqs, n_head, n_head_kv, block_shift, n_blocks, max_blocks, q_stride, out_stride, scale,
      v_scale);
  HERD_CUDA_TRY(cudaGetLastError());
  if (n_splits == 1) return cudaSuccess;
  return attention_combine(part_o, part_ml, out, n_splits, n_tokens, n_head, HEAD_DIM, out_stride, stream);
}

}  // namespace

int paged_attention_n_splits(int n_tokens, int n_seqs, int n_head, int n_head_kv, int n_sm) {
  const int64_t group = n_head / std::max(1, n_head_kv);
  // Tiles that hold query rows: at least one per sequence, at least the rows / 16. About four blocks
  // per multiprocessor hide the load latency that one tile of prefetch leaves.
  const int64_t tiles = std::max<int64_t>(n_seqs, (int64_t(n_tokens) * group + kRowsPerBlock - 1) / kRowsPerBlock);
  return attention_n_splits(tiles, n_head_kv, 4 * int64_t(std::max(1, n_sm)), kMaxSplits);
}

cudaError_t paged_attention(const float* q, const void* k_cache, const void* v_cache, const int32_t* query_start_loc,
                            const int32_t* seq_lens, const int32_t* block_table, float* out, int n_tokens, int n_seqs,
                            int n_head, int n_head_kv, int head_dim, int block_size, int n_blocks, int max_blocks,
                            int64_t q_stride, int64_t out_stride, ElemType cache_type, float scale, float v_scale,
                            int n_splits, float* workspace, cudaStream_t stream) {
  if (n_tokens == 0 || n_seqs == 0) return cudaSuccess;
  const bool is_fp8 = cache_type == ElemType::fp8_e4m3;
  int block_shift = 0;
  if (!attention_args_ok(n_tokens, n_seqs, n_head, n_head_kv, block_size, n_blocks, max_blocks, n_splits, workspace,
                         cache_type, k_cache, v_cache, &block_shift))
    return cudaErrorInvalidValue;
  // One switch over the head_dims Llama uses (64, 128; 32 for small test models) and the two cache
  // types: 6 instantiations.
#define HERD_PAGED_ATTN_T(D, TC)                                                                                 \
  launch<D, TC>(q, k_cache, v_cache, query_start_loc, seq_lens, block_table, out, n_tokens, n_seqs, n_head,        \
                n_head_kv, block_shift, n_blocks, max_blocks, q_stride, out_stride, scale, v_scale, n_splits, workspace, \
                stream)
#define HERD_PAGED_ATTN(D) (is_fp8 ? HERD_PAGED_ATTN_T(D, fp8) : HERD_PAGED_ATTN_T(D, bf16))
  switch (head_dim) {
    case 32: return HERD_PAGED_ATTN(32);
    case 64: return HERD_PAGED_ATTN(64);
    case 128: return HERD_PAGED_ATTN(128);
    default: return cudaErrorInvalidValue;
  }
#undef HERD_PAGED_ATTN
#undef HERD_PAGED_ATTN_T
}

}  // namespace herd::kernels
