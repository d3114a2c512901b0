// RMSNorm over the last dimension, f32 in and out, weight in its stored type.
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w; sums in f32. out may alias x.
cudaError_t rmsnorm(const float* x,  // [n_rows, n_embd], row stride x_stride
                    const void* w,   // [n_embd] in w_type
                    ElemType w_type,
                    float* out,      // [n_rows, n_embd], row stride out_stride
                    int n_rows, int n_embd, int64_t x_stride, int64_t out_stride, float eps,
                    cudaStream_t stream);

}  // namespace herd::kernels
