// f32 activations -> the 16-bit type of a weight, so that cuBLAS multiplies on the tensor cores.
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

// out[i] = round_to_nearest_even(x[i]) in out_type (bf16 or f16; f32 is a copy).
cudaError_t cast_f32(const float* x,  // [n]
                     void* out,       // [n] in out_type
                     ElemType out_type, int64_t n, cudaStream_t stream);

}  // namespace herd::kernels
