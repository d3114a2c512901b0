#include "kernels/cast.cuh"

#include <algorithm>

namespace herd::kernels {
namespace {

constexpr int kThreads = 256;

// Grid-stride; 4 elements per step (a float4 in, 8 bytes out) when aligned, then the scalar tail.
template <typename T>
__global__ void cast_kernel(const float* __restrict__ x, T* __restrict__ out, int64_t n_vec, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  const int64_t first = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  for (int64_t i = first; i < n_vec; i += stride) {
    const float4 v = reinterpret_cast<const float4*>(x)[i];
    T* o = out + i * 4;
    o[0] = from_f32<T>(v.x);
    o[1] = from_f32<T>(v.y);
    o[2] = from_f32<T>(v.z);
    o[3] = from_f32<T>(v.w);
  }
  for (int64_t i = n_vec * 4 + first; i < n; i += stride) out[i] = from_f32<T>(x[i]);
}

template <typename T>
cudaError_t launch(const float* x, void* out, int64_t n, cudaStream_t stream) {
  const int64_t n_vec = aligned16(x) ? n / 4 : 0;
  const int64_t work = n_vec > 0 ? n_vec : n;
  const int n_blocks = int(std::min<int64_t>((work + kThreads - 1) / kThreads, 65536));
  cast_kernel<T><<<n_blocks, kThreads, 0, stream>>>(x, static_cast<T*>(out), n_vec, n);
  HERD_LAUNCH_CHECK();
}

}  // namespace

cudaError_t cast_f32(const float* x, void* out, ElemType out_type, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  switch (out_type) {
    case ElemType::f32:
      return cudaMemcpyAsync(out, x, size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream);
    case ElemType::f16: return launch<__half>(x, out, n, stream);
    case ElemType::bf16: return launch<__nv_bfloat16>(x, out, n, stream);
    case ElemType::fp8_e4m3: break;  // a KV cache type only
  }
  return cudaErrorInvalidValue;
}

}  // namespace herd::kernels
