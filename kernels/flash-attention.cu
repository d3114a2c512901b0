#include "kernels/flash-attention.cuh"

#include <algorithm>
#include <climits>
#include <cmath>

#include "kernels/flash-attention-kernel.cuh"

namespace herd::kernels {
namespace {

using namespace flash;

constexpr int kMaxSplits = 128;

template <int D, typename TC>
cudaError_t launch(const float* q, const void* k_cache, const void* v_cache, const int32_t* qsl,
                   const int32_t* seq_lens, const int32_t* block_table, float* out, int n_tokens, int n_seqs,
                   int n_head, int n_head_kv, int block_shift, int n_blocks, int max_blocks, int64_t q_stride,
                   int64_t out_stride, float scale, float v_scale, int n_splits, float* workspace,
                   cudaStream_t stream) {
  const int64_t n_tiles = attention_grid_tiles(n_tokens, n_head / n_head_kv, n_seqs, kBlockM);
  if (n_tiles > INT_MAX) return cudaErrorInvalidValue;
  constexpr size_t kSmem = smem_bytes<D>();
  // Above the 48 KiB a block gets by default at head_dim 128; set per call, since the setting
  // belongs to the current device.
  HERD_CUDA_TRY(cudaFuncSetAttribute(flash_attention_kernel<D, TC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     int(kSmem)));
  const dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(n_head_kv), static_cast<unsigned>(n_splits));
  float* part_o = workspace;
  float* part_ml = n_splits > 1 ? workspace + size_t(n_splits) * n_tokens * n_head * D : nullptr;
  flash_attention_kernel<D, TC><<<grid, kThreads, kSmem, stream>>>(
      q, static_cast<const TC*>(k_cache), static_cast<const TC*>(v_cache), qsl, seq_lens, block_table, out, part_o,
      part_ml, n_tokens, n_seqs, n_head, n_head_kv, block_shift, n_blocks, max_blocks, q_stride, out_stride,
      scale * kLog2e, v_scale);
  HERD_CUDA_TRY(cudaGetLastError());
  if (n_splits == 1) return cudaSuccess;
  return attention_combine(part_o, part_ml, out, n_splits, n_tokens, n_head, D, out_stride, stream);
}

}  // namespace

bool flash_attention_supported(int cc_major, int head_dim) {
  return cc_major >= 8 && (head_dim == 32 || head_dim == 64 || head_dim == 128);
}

int flash_attention_n_splits(int n_tokens, int n_seqs, int n_head, int n_head_kv, int n_sm) {
  const int64_t group = n_head / std::max(1, n_head_kv);
  const int64_t tiles = std::max<int64_t>(n_seqs, (int64_t(n_tokens) * group + kBlockM - 1) / kBlockM);
  // Two blocks per multiprocessor (about 52 KB of shared memory each at head_dim 128) keep the
  // tensor cores busy while the other block waits on its loads.
  return attention_n_splits(tiles, n_head_kv, 2 * int64_t(std::max(1, n_sm)), kMaxSplits);
}

cudaError_t flash_attention(const float* q, const void* k_cache, const void* v_cache, const int32_t* query_start_loc,
                            const int32_t* seq_lens, const int32_t* block_table, float* out, int n_tokens, int n_seqs,
                            int n_head, int n_head_kv, int head_dim, int block_size, int n_blocks, int max_blocks,
                            int64_t q_stride, int64_t out_stride, ElemType cache_type, float scale, float v_scale,
                            int n_splits, float* workspace, cudaStream_t stream) {
  if (n_tokens == 0 || n_seqs == 0) return cudaSuccess;
  int block_shift = 0;
  if (!attention_args_ok(n_tokens, n_seqs, n_head, n_head_kv, block_size, n_blocks, max_blocks, n_splits, workspace,
                         cache_type, k_cache, v_cache, &block_shift) ||
      !aligned16(q) || !aligned16(out) || q_stride % 4 != 0 || out_stride % 2 != 0)
    return cudaErrorInvalidValue;
  const bool is_fp8 = cache_type == ElemType::fp8_e4m3;
#define HERD_FLASH_T(D, TC)                                                                                    \
  launch<D, TC>(q, k_cache, v_cache, query_start_loc, seq_lens, block_table, out, n_tokens, n_seqs, n_head,   \
                n_head_kv, block_shift, n_blocks, max_blocks, q_stride, out_stride, scale, v_scale, n_splits, \
                workspace, stream)
#define HERD_FLASH(D) (is_fp8 ? HERD_FLASH_T(D, fp8) : HERD_FLASH_T(D, bf16))
  switch (head_dim) {
    case 32: return HERD_FLASH(32);
    case 64: return HERD_FLASH(64);
    case 128: return HERD_FLASH(128);
    default: return cudaErrorInvalidValue;
  }
#undef HERD_FLASH
#undef HERD_FLASH_T
}

}  // namespace herd::kernels
