// Greedy decoding on the device: one token id per row comes back to the host, not n_vocab floats.
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

// out[r] = the index of the largest logits[r, :]; ties go to the lowest index (as std::max_element);
// -1 when the row holds a NaN or an infinity, which the caller reports instead of picking a token.
cudaError_t argmax(const float* logits,  // [n_rows, n_vocab], row stride logits_stride
                   int32_t* out,         // [n_rows]
                   int n_rows, int n_vocab, int64_t logits_stride, cudaStream_t stream);

}  // namespace herd::kernels
