#include "kernels/fp8-rows.cuh"

#include "kernels/fp8-rows-kernel.cuh"

namespace herd::kernels {

using namespace fp8rows;

cudaError_t fp8_rows_quantize(const float* x, int64_t n_rows, int64_t cols, int64_t x_stride, void* codes,
                              float* scales, cudaStream_t stream) {
  if (n_rows == 0) return cudaSuccess;
  if (n_rows < 0 || n_rows > 0x7fffffff || cols <= 0 || x_stride < cols) return cudaErrorInvalidValue;
  quantize_kernel<<<unsigned(n_rows), kQuantizeThreads, kQuantizeThreads / 32 * sizeof(float), stream>>>(
      x, cols, x_stride, static_cast<__nv_fp8_e4m3*>(codes), scales);
  HERD_LAUNCH_CHECK();
}

cudaError_t fp8_rows_to_bf16(const void* codes, const float* scales, int64_t rows, int64_t cols, void* out,
                             cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n == 0) return cudaSuccess;
  if (rows < 0 || cols <= 0) return cudaErrorInvalidValue;
  to_bf16_kernel<<<unsigned((n + 255) / 256), 256, 0, stream>>>(static_cast<const __nv_fp8_e4m3*>(codes), scales, rows,
                                                                cols, static_cast<__nv_bfloat16*>(out));
  HERD_LAUNCH_CHECK();
}

cudaError_t fp8_rows_embed(const void* codes, const float* scales, int64_t n_rows, int64_t cols, const int32_t* ids,
                           float* out, int64_t n_ids, cudaStream_t stream) {
  if (n_ids == 0) return cudaSuccess;
  if (n_ids < 0 || n_ids > 0x7fffffff || cols <= 0) return cudaErrorInvalidValue;
  embed_kernel<<<unsigned(n_ids), 128, 0, stream>>>(static_cast<const __nv_fp8_e4m3*>(codes), scales, n_rows, cols,
                                                   ids, out);
  HERD_LAUNCH_CHECK();
}

}  // namespace herd::kernels
