// Selecting rows of an f32 matrix (the rows whose logits are wanted, before the LM head).
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

// out[r, :] = x[rows[r], :]. A row index outside [0, n_rows_x) yields a row of NaN.
cudaError_t gather_rows(const float* x,        // [n_rows_x, n_cols]
                        const int32_t* rows,   // [n_rows]
                        float* out,            // [n_rows, n_cols]
                        int n_rows, int64_t n_rows_x, int n_cols, cudaStream_t stream);

}  // namespace herd::kernels
