#include "kernels/kv-write.cuh"

namespace herd::kernels {
namespace {

// One block per token. Its source row (n_head_kv * head_dim elements) is contiguous; in the cache
// each head's head_dim elements are contiguous, the heads block_size * head_dim apart.
template <typename TC>
__global__ void kv_write_kernel(const float* __restrict__ k,              // [n_tokens, n_head_kv, head_dim]
                                const float* __restrict__ v,              // [n_tokens, n_head_kv, head_dim]
                                const int32_t* __restrict__ slot_mapping,  // [n_tokens]
                                TC* __restrict__ k_cache,                 // [n_blocks, n_head_kv, block_size, head_dim]
                                TC* __restrict__ v_cache,                 // [n_blocks, n_head_kv, block_size, head_dim]
                                int n_head_kv, int head_dim, int block_size, int64_t n_slots, int64_t k_stride,
                                int64_t v_stride) {
  const int64_t t = blockIdx.x;
  const int32_t slot = slot_mapping[t];
  if (slot < 0 || slot >= n_slots) return;
  const int64_t block = slot / block_size, offset = slot % block_size;
  const float* ks = k + t * k_stride;
  const float* vs = v + t * v_stride;
  for (int i = threadIdx.x; i < n_head_kv * head_dim; i += blockDim.x) {
    const int h = i / head_dim, d = i % head_dim;
    const int64_t dst = ((block * n_head_kv + h) * block_size + offset) * head_dim + d;
    k_cache[dst] = from_f32<TC>(ks[i]);
    v_cache[dst] = from_f32<TC>(vs[i]);
  }
}

template <typename TC>
cudaError_t launch(const float* k, const float* v, const int32_t* slot_mapping, void* k_cache, void* v_cache,
                   int n_tokens, int n_head_kv, int head_dim, int block_size, int n_blocks, int64_t k_stride,
                   int64_t v_stride, cudaStream_t stream) {
  kv_write_kernel<TC><<<n_tokens, 256, 0, stream>>>(k, v, slot_mapping, static_cast<TC*>(k_cache),
                                                    static_cast<TC*>(v_cache), n_head_kv, head_dim, block_size,
                                                    int64_t(n_blocks) * block_size, k_stride, v_stride);
  HERD_LAUNCH_CHECK();
}

}  // namespace

cudaError_t kv_write(const float* k, const float* v, const int32_t* slot_mapping, void* k_cache, void* v_cache,
                     ElemType cache_type, int n_tokens, int n_head_kv, int head_dim, int block_size, int n_blocks,
                     int64_t k_stride, int64_t v_stride, cudaStream_t stream) {
  if (n_tokens == 0) return cudaSuccess;
  if (n_tokens < 0 || n_head_kv <= 0 || head_dim <= 0 || block_size <= 0 || n_blocks < 0) return cudaErrorInvalidValue;
  switch (cache_type) {
    case ElemType::f32:
      return launch<float>(k, v, slot_mapping, k_cache, v_cache, n_tokens, n_head_kv, head_dim, block_size, n_blocks,
                           k_stride, v_stride, stream);
    case ElemType::bf16:
      return launch<__nv_bfloat16>(k, v, slot_mapping, k_cache, v_cache, n_tokens, n_head_kv, head_dim, block_size,
                                   n_blocks, k_stride, v_stride, stream);
    case ElemType::f16: break;  // no f16 caches: bf16 has the range K and V need
  }
  return cudaErrorInvalidValue;
}

}  // namespace herd::kernels
