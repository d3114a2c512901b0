// FP8 x FP8 matrix products on tensor cores through cuBLASLt (sm_89 and up): weights as E4M3 codes
// with a scale per row (kernels/fp8-rows.cuh), activations quantized per token the same way, the
// two scale vectors applied by cuBLASLt's outer-vector scaling, f32 out.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace herd {

class Fp8Gemm {
 public:
  // fp8_tensor_cores: the device has them (compute capability 8.9 and up). workspace: scratch
  // cuBLASLt may use, ordered on `stream` with everything else.
  Fp8Gemm(bool fp8_tensor_cores, cudaStream_t stream, void* workspace, size_t workspace_bytes);
  ~Fp8Gemm();
  Fp8Gemm(const Fp8Gemm&) = delete;
  Fp8Gemm& operator=(const Fp8Gemm&) = delete;

  // out[t, r] = x_scales[t] * w_scales[r] * sum_c x_codes[t, c] * w_codes[r, c] for t < n, r < m.
  // False, with nothing queued, when this device or cuBLASLt has no kernel for the shapes
  // (alignment, an older GPU): the caller takes another way.
  bool run(const void* w_codes, const float* w_scales, int64_t m,  // [m, k], [m]
           const void* x_codes, const float* x_scales, int64_t n,  // [n, k], [n]
           int64_t k, float* out);                                 // [n, m]

 private:
  cublasLtHandle_t lt_ = nullptr;
  bool usable_ = false;
  cudaStream_t stream_;
  void* workspace_;
  size_t workspace_bytes_;
};

}  // namespace herd
