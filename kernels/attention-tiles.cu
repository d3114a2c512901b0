#include "kernels/attention-tiles.cuh"

#include <algorithm>
#include <cmath>

namespace herd::kernels {
namespace {

// One block per (token, head), one thread per dimension.
__global__ void attention_combine_kernel(const float* __restrict__ part_o, const float* __restrict__ part_ml,
                                         float* __restrict__ out, int n_splits, int n_tokens, int n_head,
                                         int head_dim, int64_t out_stride) {
  const int64_t th = blockIdx.x;
  const int64_t t = th / n_head, h = th % n_head;
  const int d = threadIdx.x;
  const int64_t split_stride = int64_t(n_tokens) * n_head;
  float mx = -INFINITY;
  for (int s = 0; s < n_splits; ++s) mx = fmaxf(mx, part_ml[(s * split_stride + th) * 2]);
  float sum = 0.f, acc = 0.f;
  if (mx != -INFINITY) {
    for (int s = 0; s < n_splits; ++s) {
      const float ms = part_ml[(s * split_stride + th) * 2];
      if (ms == -INFINITY) continue;  // an empty split
      const float w = expf(ms - mx);
      sum += part_ml[(s * split_stride + th) * 2 + 1] * w;
      acc += part_o[(s * split_stride + th) * head_dim + d] * w;
    }
  }
  out[t * out_stride + h * head_dim + d] = sum > 0.f ? acc / sum : 0.f;
}

}  // namespace

cudaError_t attention_combine(const float* part_o, const float* part_ml, float* out, int n_splits, int n_tokens,
                              int n_head, int head_dim, int64_t out_stride, cudaStream_t stream) {
  if (n_tokens == 0) return cudaSuccess;
  attention_combine_kernel<<<unsigned(int64_t(n_tokens) * n_head), head_dim, 0, stream>>>(
      part_o, part_ml, out, n_splits, n_tokens, n_head, head_dim, out_stride);
  HERD_LAUNCH_CHECK();
}

bool attention_args_ok(int n_tokens, int n_seqs, int n_head, int n_head_kv, int block_size, int n_blocks,
                       int max_blocks, int n_splits, const float* workspace, ElemType cache_type, const void* k_cache,
                       const void* v_cache, int* block_shift) {
  const bool pow2 = block_size > 0 && (block_size & (block_size - 1)) == 0;
  if ((cache_type != ElemType::bf16 && cache_type != ElemType::fp8_e4m3) || n_tokens < 0 || n_seqs < 0 ||
      n_head_kv <= 0 || n_head_kv > 65535 || n_head % n_head_kv != 0 || !pow2 || n_blocks <= 0 || max_blocks <= 0 ||
      n_splits < 1 || n_splits > 65535 || (n_splits > 1 && workspace == nullptr) || !aligned16(k_cache) ||
      !aligned16(v_cache))
    return false;
  *block_shift = 0;
  while ((1 << *block_shift) < block_size) ++*block_shift;
  return true;
}

int attention_n_splits(int64_t tiles_per_head, int n_head_kv, int64_t target, int max_splits) {
  const int64_t base = std::max<int64_t>(1, tiles_per_head * std::max(1, n_head_kv));
  if (2 * base >= target) return 1;
  return int(std::min<int64_t>(max_splits, (target + base - 1) / base));
}

}  // namespace herd::kernels
