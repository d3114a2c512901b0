// FP8 E4M3 matrices with one f32 scale per row, the CUDA backend's layout for FP8 weights (and for
// activations quantized per token for FP8 x FP8 products): codes [rows, cols] row-major, scales
// [rows]; element (r, c) is scales[r] * e4m3(codes[r, c]).
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

// Per-token dynamic quantization: scales[t] = max_c |x[t, c]| / 448 (1 for a row of zeros) and
// codes[t, c] = x[t, c] / scales[t] rounded to nearest even, saturated at +-448.
cudaError_t fp8_rows_quantize(const float* x,  // [n_rows, cols], row stride x_stride
                              int64_t n_rows, int64_t cols, int64_t x_stride,
                              void* codes,    // [n_rows, cols] E4M3
                              float* scales,  // [n_rows]
                              cudaStream_t stream);

// out[r, c] = scales[r] * e4m3(codes[r, c]) as BF16 (round to nearest even).
cudaError_t fp8_rows_to_bf16(const void* codes, const float* scales, int64_t rows, int64_t cols,
                             void* out,  // [rows, cols] bf16
                             cudaStream_t stream);

// out[i, :] = row ids[i] as f32; an id of -1 gives zeros, one outside [0, n_rows) NaN (as embed).
cudaError_t fp8_rows_embed(const void* codes, const float* scales, int64_t n_rows, int64_t cols, const int32_t* ids,
                           float* out,  // [n_ids, cols]
                           int64_t n_ids, cudaStream_t stream);

}  // namespace herd::kernels
