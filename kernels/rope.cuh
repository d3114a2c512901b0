// Rotary position embedding in the half-split ("rotate_half") layout of Hugging Face checkpoints.
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

// In place: for each token t, head h, i < head_dim/2, with angle = float(pos[t]) * inv_freq[i]
// rounded to f32 (as the CPU reference and the Python implementations do):
//   (x[i], x[i + half]) <- (x[i] cos - x[i + half] sin, x[i + half] cos + x[i] sin)
cudaError_t rope(float* x,                // [n_tokens, n_head, head_dim], token stride x_stride
                 const int32_t* pos,      // [n_tokens]
                 const float* inv_freq,   // [head_dim / 2], already llama3-scaled
                 int n_tokens, int n_head, int head_dim, int64_t x_stride, cudaStream_t stream);

}  // namespace herd::kernels
