#include "kernels/silu-mul.cuh"

namespace herd::kernels {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float silu_mul1(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// blockIdx.x = row, blockIdx.y = slice of 1024 columns; each thread handles 4 consecutive elements (one float4 when VEC).
template <bool VEC>
__global__ void silu_mul_kernel(const float* gate, const float* up, float* out,  // [n_rows, n_ff]
                                int n_ff, int64_t gate_stride, int64_t up_stride, int64_t out_stride) {
  const int i = (blockIdx.y * kThreads + threadIdx.x) * 4;
  if (i >= n_ff) return;
  const float* g = gate + blockIdx.x * gate_stride;
  const float* u = up + blockIdx.x * up_stride;
  float* o = out + blockIdx.x * out_stride;
  if constexpr (VEC) {
    const float4 gv = *reinterpret_cast<const float4*>(g + i);
    const float4 uv = *reinterpret_cast<const float4*>(u + i);
    *reinterpret_cast<float4*>(o + i) =
        make_float4(silu_mul1(gv.x, uv.x), silu_mul1(gv.y, uv.y), silu_mul1(gv.z, uv.z), silu_mul1(gv.w, uv.w));
  } else {
    for (int e = i; e < min(i + 4, n_ff); ++e) o[e] = silu_mul1(g[e], u[e]);
  }
}

}  // namespace

cudaError_t silu_mul(const float* gate, const float* up, float* out, int n_rows, int n_ff, int64_t gate_stride,
                     int64_t up_stride, int64_t out_stride, cudaStream_t stream) {
  if (n_rows == 0 || n_ff == 0) return cudaSuccess;
  const dim3 grid(n_rows, (n_ff + 4 * kThreads - 1) / (4 * kThreads));
  const bool vec = n_ff % 4 == 0 && gate_stride % 4 == 0 && up_stride % 4 == 0 && out_stride % 4 == 0 &&
                   aligned16(gate) && aligned16(up) && aligned16(out);
  if (vec) {
    silu_mul_kernel<true><<<grid, kThreads, 0, stream>>>(gate, up, out, n_ff, gate_stride, up_stride, out_stride);
  } else {
    silu_mul_kernel<false><<<grid, kThreads, 0, stream>>>(gate, up, out, n_ff, gate_stride, up_stride, out_stride);
  }
  HERD_LAUNCH_CHECK();
}

}  // namespace herd::kernels
