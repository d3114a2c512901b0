// The residual add fused with the RMSNorm that follows it: one pass over the residual stream.
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

// The longest row one block keeps in registers: 1024 threads x 16 elements (Llama 3.1 405B's n_embd).
constexpr int kAddRmsnormMaxEmbd = 16384;

// For each row r:  x[r, :] += y[r, :];  out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w,
// with the same f32 expressions as the add and rmsnorm kernels. x and y are read once, x written
// once. out may alias y (each thread reads its elements of y before writing them), not x.
// n_embd <= kAddRmsnormMaxEmbd, else cudaErrorInvalidValue.
cudaError_t add_rmsnorm(float* x,        // [n_rows, n_embd], row stride x_stride
                        const float* y,  // [n_rows, n_embd], row stride y_stride
                        const void* w,   // [n_embd] in w_type
                        ElemType w_type,
                        float* out,      // [n_rows, n_embd], row stride out_stride
                        int n_rows, int n_embd, int64_t x_stride, int64_t y_stride, int64_t out_stride, float eps,
                        cudaStream_t stream);

}  // namespace herd::kernels
