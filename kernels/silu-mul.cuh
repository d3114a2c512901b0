// The SwiGLU gate: silu(gate) * up, elementwise.
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

// out[r, i] = gate[r, i] / (1 + exp(-gate[r, i])) * up[r, i]. Row strides let gate and up be the two
// halves of one fused gate/up product. out may alias gate or up.
cudaError_t silu_mul(const float* gate,  // [n_rows, n_ff], row stride gate_stride
                     const float* up,    // [n_rows, n_ff], row stride up_stride
                     float* out,         // [n_rows, n_ff], row stride out_stride
                     int n_rows, int n_ff, int64_t gate_stride, int64_t up_stride, int64_t out_stride,
                     cudaStream_t stream);

}  // namespace herd::kernels
