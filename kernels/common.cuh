// What every kernel file shares: the element types the launchers accept, error propagation,
// and (for nvcc only) the device-side conversions and warp reductions.
// Host code (src/backend/cuda, compiled by the C++ compiler) includes this too, so everything
// outside the __CUDACC__ block must be plain C++ plus the CUDA runtime API.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace herd::kernels {

// Element type of a stored tensor (a weight row, a KV cache). Activations are always f32.
// fp8_e4m3: KV caches only.
enum class ElemType : uint8_t { f32, f16, bf16, fp8_e4m3 };

inline int elem_size(ElemType t) { return t == ElemType::f32 ? 4 : t == ElemType::fp8_e4m3 ? 1 : 2; }

}  // namespace herd::kernels

// Returns the error of a CUDA runtime call to the launcher's caller; launchers never throw.
#define HERD_CUDA_TRY(expr)                      \
  do {                                           \
    const cudaError_t herd_err_ = (expr);        \
    if (herd_err_ != cudaSuccess) return herd_err_; \
  } while (0)

// After a launch: a bad configuration shows up only in the last error, so every launcher ends here.
#define HERD_LAUNCH_CHECK() return cudaGetLastError()

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

namespace herd::kernels {

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__nv_fp8_e4m3 v) { return float(v); }

// Round to nearest even, the same rule as the host's f32_to_bf16 / f32_to_f16.
template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
// E4M3 saturates at +-448 (the host's f32_to_e4m3 does too); NaN stays NaN.
template <>
__device__ __forceinline__ __nv_fp8_e4m3 from_f32<__nv_fp8_e4m3>(float v) { return __nv_fp8_e4m3(v); }

// N consecutive elements as f32 through one 16-byte (f32: N=4) or 16-byte (16-bit: N=8) load.
// The caller guarantees 16-byte alignment.
template <typename T>
struct Vec16 {
  static constexpr int n = 16 / sizeof(T);
};

template <typename T>
__device__ __forceinline__ void load16_f32(const T* p, float* dst) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < Vec16<T>::n; ++i) dst[i] = to_f32(e[i]);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the whole block; every thread gets the result. scratch: >= 32 floats of shared memory.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < n_warps ? scratch[lane] : 0.f;
  return warp_sum(v);
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// The block's dynamic shared memory (the launch's third parameter), 16-byte aligned.
__device__ __forceinline__ unsigned char* dynamic_smem() {
  extern __shared__ __align__(16) unsigned char smem[];
  return smem;
}

}  // namespace herd::kernels
#endif
