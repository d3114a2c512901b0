#include "kernels/add.cuh"

#include <algorithm>

namespace herd::kernels {
namespace {

constexpr int kThreads = 256;

// Grid-stride over float4s; the scalar tail (n % 4, or everything when misaligned) by the same loop.
__global__ void add_kernel(float* __restrict__ x, const float* __restrict__ y, int64_t n_vec, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  const int64_t first = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  for (int64_t i = first; i < n_vec; i += stride) {
    float4 a = reinterpret_cast<float4*>(x)[i];
    const float4 b = reinterpret_cast<const float4*>(y)[i];
    a.x += b.x, a.y += b.y, a.z += b.z, a.w += b.w;
    reinterpret_cast<float4*>(x)[i] = a;
  }
  for (int64_t i = n_vec * 4 + first; i < n; i += stride) x[i] += y[i];
}

}  // namespace

cudaError_t add(float* x, const float* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const int64_t n_vec = aligned16(x) && aligned16(y) ? n / 4 : 0;
  const int64_t work = n_vec > 0 ? n_vec : n;
  const int n_blocks = int(std::min<int64_t>((work + kThreads - 1) / kThreads, 65536));
  add_kernel<<<n_blocks, kThreads, 0, stream>>>(x, y, n_vec, n);
  HERD_LAUNCH_CHECK();
}

}  // namespace herd::kernels
