#include "kernels/rope-kv-write.cuh"

namespace herd::kernels {
namespace {

constexpr int kThreads = 256;

// One block per token. threadIdx.x = frequency index i (blockDim.x = half), threadIdx.y strides
// over heads: consecutive threads touch consecutive elements, and no thread divides by half.
// The token's cos/sin are computed once (precise sincosf: angles reach ~1e5 rad at long contexts)
// into shared memory and used by every head of q and k.
template <typename TC>
__global__ void rope_kv_write_kernel(float* __restrict__ q,                     // [n_tokens, n_head, head_dim]
                                     float* __restrict__ k,                     // [n_tokens, n_head_kv, head_dim]
                                     const float* __restrict__ v,               // [n_tokens, n_head_kv, head_dim]
                                     const int32_t* __restrict__ pos,           // [n_tokens]
                                     const float* __restrict__ inv_freq,        // [half]
                                     const int32_t* __restrict__ slot_mapping,  // [n_tokens]
                                     TC* __restrict__ k_cache,  // [n_blocks, n_head_kv, block_size, head_dim]
                                     TC* __restrict__ v_cache,  // [n_blocks, n_head_kv, block_size, head_dim]
                                     float k_scale, float v_scale, int n_head, int n_head_kv, int block_size,
                                     int64_t n_slots, int64_t q_stride, int64_t k_stride, int64_t v_stride) {
  extern __shared__ float cos_sin[];  // [2, half]: this token's cos, then its sin
  const int half = blockDim.x, head_dim = 2 * half, i = threadIdx.x;
  const int64_t t = blockIdx.x;
  if (threadIdx.y == 0) {
    const float angle = float(pos[t]) * inv_freq[i];
    sincosf(angle, &cos_sin[half + i], &cos_sin[i]);
  }
  __syncthreads();
  const float c = cos_sin[i], s = cos_sin[half + i];

  float* qt = q + t * q_stride;
  for (int h = threadIdx.y; h < n_head; h += blockDim.y) {
    float* x = qt + int64_t(h) * head_dim;
    const float a = x[i], b = x[i + half];
    x[i] = a * c - b * s;
    x[i + half] = b * c + a * s;
  }
  if (n_head_kv == 0) return;  // RoPE on q alone

  const int32_t slot = slot_mapping[t];
  const bool write = slot >= 0 && slot < n_slots;
  const int64_t block = write ? slot / block_size : 0, offset = write ? slot % block_size : 0;
  float* kt = k + t * k_stride;
  const float* vt = v + t * v_stride;
  for (int h = threadIdx.y; h < n_head_kv; h += blockDim.y) {
    float* x = kt + int64_t(h) * head_dim;
    const float a = x[i], b = x[i + half];
    const float ra = a * c - b * s, rb = b * c + a * s;
    x[i] = ra;
    x[i + half] = rb;
    if (write) {
      const int64_t dst = ((block * n_head_kv + h) * block_size + offset) * head_dim;
      // x / 1 is x: the division changes only an FP8 cache's values.
      k_cache[dst + i] = from_f32<TC>(ra / k_scale);
      k_cache[dst + i + half] = from_f32<TC>(rb / k_scale);
      v_cache[dst + i] = from_f32<TC>(vt[int64_t(h) * head_dim + i] / v_scale);
      v_cache[dst + i + half] = from_f32<TC>(vt[int64_t(h) * head_dim + i + half] / v_scale);
    }
  }
}

template <typename TC>
cudaError_t launch(float* q, float* k, const float* v, const int32_t* pos, const float* inv_freq,
                   const int32_t* slot_mapping, void* k_cache, void* v_cache, float k_scale, float v_scale,
                   int n_tokens, int n_head, int n_head_kv, int head_dim, int block_size, int n_blocks,
                   int64_t q_stride, int64_t k_stride, int64_t v_stride, cudaStream_t stream) {
  const int half = head_dim / 2;
  const dim3 block(half, half >= kThreads ? 1 : kThreads / half);
  const size_t shared = size_t(head_dim) * sizeof(float);
  rope_kv_write_kernel<TC><<<n_tokens, block, shared, stream>>>(
      q, k, v, pos, inv_freq, slot_mapping, static_cast<TC*>(k_cache), static_cast<TC*>(v_cache), k_scale, v_scale,
      n_head, n_head_kv, block_size, int64_t(n_blocks) * block_size, q_stride, k_stride, v_stride);
  HERD_LAUNCH_CHECK();
}

}  // namespace

cudaError_t rope_kv_write(float* q, float* k, const float* v, const int32_t* pos, const float* inv_freq,
                          const int32_t* slot_mapping, void* k_cache, void* v_cache, ElemType cache_type,
                          float k_scale, float v_scale, int n_tokens, int n_head, int n_head_kv, int head_dim,
                          int block_size, int n_blocks, int64_t q_stride, int64_t k_stride, int64_t v_stride,
                          cudaStream_t stream) {
  if (n_tokens == 0) return cudaSuccess;
  if (n_tokens < 0 || n_head < 0 || n_head_kv < 0 || head_dim <= 0 || head_dim % 2 != 0 || head_dim > 2048)
    return cudaErrorInvalidValue;
  if (n_head_kv > 0 && (block_size <= 0 || n_blocks < 0)) return cudaErrorInvalidValue;
  if (!(k_scale > 0.f) || !(v_scale > 0.f)) return cudaErrorInvalidValue;
#define HERD_ROPE_KV(TC)                                                                                         \
  launch<TC>(q, k, v, pos, inv_freq, slot_mapping, k_cache, v_cache, k_scale, v_scale, n_tokens, n_head, n_head_kv, \
             head_dim, block_size, n_blocks, q_stride, k_stride, v_stride, stream)
  switch (cache_type) {
    case ElemType::f32: return HERD_ROPE_KV(float);
    case ElemType::bf16: return HERD_ROPE_KV(__nv_bfloat16);
    case ElemType::fp8_e4m3: return HERD_ROPE_KV(__nv_fp8_e4m3);
    case ElemType::f16: break;  // no f16 caches: bf16 has the range K and V need
  }
#undef HERD_ROPE_KV
  return cudaErrorInvalidValue;
}

}  // namespace herd::kernels
