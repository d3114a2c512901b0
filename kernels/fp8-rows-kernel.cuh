// The FP8-rows kernels themselves (launched by kernels/fp8-rows.cu); a header of its own so that
// tests/kernels also runs them on an emulated device in CI (see flash-attention-kernel.cuh).
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {
namespace fp8rows {

constexpr float kE4m3Max = 448.f;
constexpr int kQuantizeThreads = 256;

// One block per row: the row's largest magnitude (warp maxima through shared memory), then its codes.
__global__ void __launch_bounds__(kQuantizeThreads) quantize_kernel(const float* __restrict__ x, int64_t cols,
                                                                    int64_t x_stride, __nv_fp8_e4m3* __restrict__ codes,
                                                                    float* __restrict__ scales) {
  float* warp_max_s = reinterpret_cast<float*>(dynamic_smem());  // [kQuantizeThreads / 32]
  const int64_t t = blockIdx.x;
  const float* row = x + t * x_stride;
  float m = 0.f;
  for (int64_t c = threadIdx.x; c < cols; c += kQuantizeThreads) m = fmaxf(m, fabsf(row[c]));
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0) warp_max_s[threadIdx.x >> 5] = m;
  __syncthreads();
  m = 0.f;
  for (int w = 0; w < kQuantizeThreads / 32; ++w) m = fmaxf(m, warp_max_s[w]);
  const float scale = m > 0.f ? m / kE4m3Max : 1.f;
  if (threadIdx.x == 0) scales[t] = scale;
  for (int64_t c = threadIdx.x; c < cols; c += kQuantizeThreads) codes[t * cols + c] = __nv_fp8_e4m3(row[c] / scale);
}

__global__ void to_bf16_kernel(const __nv_fp8_e4m3* __restrict__ codes, const float* __restrict__ scales, int64_t rows,
                               int64_t cols, __nv_bfloat16* __restrict__ out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * cols) return;
  out[i] = __float2bfloat16_rn(scales[i / cols] * float(codes[i]));
}

// One block per id.
__global__ void embed_kernel(const __nv_fp8_e4m3* __restrict__ codes, const float* __restrict__ scales, int64_t n_rows,
                             int64_t cols, const int32_t* __restrict__ ids, float* __restrict__ out) {
  const int64_t i = blockIdx.x;
  const int32_t id = ids[i];
  float* o = out + i * cols;
  if (id < 0 || id >= n_rows) {  // -1: a row another tensor-parallel rank holds
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) o[c] = id == -1 ? 0.f : NAN;
    return;
  }
  const float s = scales[id];
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) o[c] = s * float(codes[int64_t(id) * cols + c]);
}

}  // namespace fp8rows
}  // namespace herd::kernels
