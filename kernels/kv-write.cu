#include "kernels/kv-write.cuh"

namespace herd::kernels {
namespace {

// One block per token; the row (n_head_kv * head_dim elements) is contiguous in source and cache.
template <typename TC>
__global__ void kv_write_kernel(const float* __restrict__ k, const float* __restrict__ v,  // [n_tokens, row]
                                const int32_t* __restrict__ pos,                            // [n_tokens]
                                TC* __restrict__ k_cache, TC* __restrict__ v_cache,         // [n_ctx, row]
                                int row, int n_ctx, int64_t k_stride, int64_t v_stride) {
  const int64_t t = blockIdx.x;
  const int32_t p = pos[t];
  if (p < 0 || p >= n_ctx) return;
  const float* ks = k + t * k_stride;
  const float* vs = v + t * v_stride;
  TC* kd = k_cache + int64_t(p) * row;
  TC* vd = v_cache + int64_t(p) * row;
  for (int i = threadIdx.x; i < row; i += blockDim.x) {
    kd[i] = from_f32<TC>(ks[i]);
    vd[i] = from_f32<TC>(vs[i]);
  }
}

template <typename TC>
cudaError_t launch(const float* k, const float* v, const int32_t* pos, void* k_cache, void* v_cache,
                   int n_tokens, int row, int n_ctx, int64_t k_stride, int64_t v_stride, cudaStream_t stream) {
  kv_write_kernel<TC><<<n_tokens, 256, 0, stream>>>(k, v, pos, static_cast<TC*>(k_cache),
                                                    static_cast<TC*>(v_cache), row, n_ctx, k_stride, v_stride);
  HERD_LAUNCH_CHECK();
}

}  // namespace

cudaError_t kv_write(const float* k, const float* v, const int32_t* pos, void* k_cache, void* v_cache,
                     ElemType cache_type, int n_tokens, int n_head_kv, int head_dim, int n_ctx, int64_t k_stride,
                     int64_t v_stride, cudaStream_t stream) {
  if (n_tokens == 0) return cudaSuccess;
  const int row = n_head_kv * head_dim;
  switch (cache_type) {
    case ElemType::f32:
      return launch<float>(k, v, pos, k_cache, v_cache, n_tokens, row, n_ctx, k_stride, v_stride, stream);
    case ElemType::bf16:
      return launch<__nv_bfloat16>(k, v, pos, k_cache, v_cache, n_tokens, row, n_ctx, k_stride, v_stride, stream);
    case ElemType::f16: break;  // no f16 caches: bf16 has the range K and V need
  }
  return cudaErrorInvalidValue;
}

}  // namespace herd::kernels
