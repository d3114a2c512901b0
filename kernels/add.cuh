// Residual add, in place.
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

// x[i] += y[i] for i < n.
cudaError_t add(float* x,        // [n]
                const float* y,  // [n]
                int64_t n, cudaStream_t stream);

}  // namespace herd::kernels
