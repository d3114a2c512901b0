#include "kernels/rmsnorm.cuh"

namespace herd::kernels {
namespace {

constexpr int kThreads = 256;

// One block per row. The row is read twice (sum of squares, then scale); the second read hits L1/L2.
template <typename TW, bool VEC>
__global__ void __launch_bounds__(kThreads) rmsnorm_kernel(const float* x,    // [n_rows, n_embd]
                                                           const TW* __restrict__ w,     // [n_embd]
                                                           float* out,                   // [n_rows, n_embd]
                                                           int n_embd, int64_t x_stride,
                                                           int64_t out_stride, float eps) {
  __shared__ float scratch[32];
  const float* xr = x + blockIdx.x * x_stride;
  float* yr = out + blockIdx.x * out_stride;
  float ss = 0.f;
  if constexpr (VEC) {
    for (int i = threadIdx.x * 4; i < n_embd; i += kThreads * 4) {
      const float4 v = *reinterpret_cast<const float4*>(xr + i);
      ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
  } else {
    for (int i = threadIdx.x; i < n_embd; i += kThreads) ss += xr[i] * xr[i];
  }
  ss = block_sum(ss, scratch);
  // Same expression as the CPU reference: 1 / sqrt(mean + eps), then (x * scale) * w.
  const float scale = 1.0f / sqrtf(ss / float(n_embd) + eps);
  if constexpr (VEC) {
    for (int i = threadIdx.x * 4; i < n_embd; i += kThreads * 4) {
      const float4 v = *reinterpret_cast<const float4*>(xr + i);
      float4 r;
      r.x = v.x * scale * to_f32(w[i + 0]);
      r.y = v.y * scale * to_f32(w[i + 1]);
      r.z = v.z * scale * to_f32(w[i + 2]);
      r.w = v.w * scale * to_f32(w[i + 3]);
      *reinterpret_cast<float4*>(yr + i) = r;
    }
  } else {
    for (int i = threadIdx.x; i < n_embd; i += kThreads) yr[i] = xr[i] * scale * to_f32(w[i]);
  }
}

template <typename TW>
cudaError_t launch(const float* x, const void* w, float* out, int n_rows, int n_embd, int64_t x_stride,
                   int64_t out_stride, float eps, cudaStream_t stream) {
  const bool vec = n_embd % 4 == 0 && x_stride % 4 == 0 && out_stride % 4 == 0 && aligned16(x) && aligned16(out);
  const TW* wt = static_cast<const TW*>(w);
  if (vec) {
    rmsnorm_kernel<TW, true><<<n_rows, kThreads, 0, stream>>>(x, wt, out, n_embd, x_stride, out_stride, eps);
  } else {
    rmsnorm_kernel<TW, false><<<n_rows, kThreads, 0, stream>>>(x, wt, out, n_embd, x_stride, out_stride, eps);
  }
  HERD_LAUNCH_CHECK();
}

}  // namespace

cudaError_t rmsnorm(const float* x, const void* w, ElemType w_type, float* out, int n_rows, int n_embd,
                    int64_t x_stride, int64_t out_stride, float eps, cudaStream_t stream) {
  if (n_rows == 0) return cudaSuccess;
  switch (w_type) {
    case ElemType::f32: return launch<float>(x, w, out, n_rows, n_embd, x_stride, out_stride, eps, stream);
    case ElemType::f16: return launch<__half>(x, w, out, n_rows, n_embd, x_stride, out_stride, eps, stream);
    case ElemType::bf16:
      return launch<__nv_bfloat16>(x, w, out, n_rows, n_embd, x_stride, out_stride, eps, stream);
    case ElemType::fp8_e4m3: break;  // a KV cache type only
  }
  return cudaErrorInvalidValue;
}

}  // namespace herd::kernels
