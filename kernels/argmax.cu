#include "kernels/argmax.cuh"

#include <climits>
#include <cmath>

namespace herd::kernels {
namespace {

constexpr int kThreads = 1024;

// (value, index) ordered so that the larger value wins and, between equal values, the lower index.
__device__ __forceinline__ void better(float& v, int& i, float v2, int i2) {
  if (v2 > v || (v2 == v && i2 < i)) v = v2, i = i2;
}

// One block per row: strided scan, then warp shuffles, then one warp over the warps' winners.
__global__ void __launch_bounds__(kThreads) argmax_kernel(const float* __restrict__ logits,  // [n_rows, n_vocab]
                                                          int32_t* __restrict__ out,         // [n_rows]
                                                          int n_vocab, int64_t stride) {
  __shared__ float best_v[32];
  __shared__ int best_i[32];
  const float* row = logits + blockIdx.x * stride;
  float v = -INFINITY;
  int idx = INT_MAX;
  bool bad = false;  // a NaN or an infinity: the row has no meaningful maximum
  for (int i = threadIdx.x; i < n_vocab; i += kThreads) {
    bad |= !isfinite(row[i]);
    better(v, idx, row[i], i);
  }
  const bool row_bad = __syncthreads_or(bad);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v2 = __shfl_xor_sync(0xffffffffu, v, o);
    const int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
    better(v, idx, v2, i2);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) best_v[warp] = v, best_i[warp] = idx;
  __syncthreads();
  if (warp == 0) {
    v = best_v[lane];
    idx = best_i[lane];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float v2 = __shfl_xor_sync(0xffffffffu, v, o);
      const int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
      better(v, idx, v2, i2);
    }
    if (lane == 0) out[blockIdx.x] = row_bad ? -1 : idx;
  }
}

}  // namespace

cudaError_t argmax(const float* logits, int32_t* out, int n_rows, int n_vocab, int64_t logits_stride,
                   cudaStream_t stream) {
  if (n_rows == 0) return cudaSuccess;
  argmax_kernel<<<n_rows, kThreads, 0, stream>>>(logits, out, n_vocab, logits_stride);
  HERD_LAUNCH_CHECK();
}

}  // namespace herd::kernels
