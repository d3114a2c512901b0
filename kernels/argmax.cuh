// Greedy decoding on the device: one token id per row comes back to the host, not n_vocab floats.
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

// out[r] = the index of the largest logits[r, :]; ties go to the lowest index (as std::max_element),
// NaNs are skipped; a row of NaNs gives 0.
cudaError_t argmax(const float* logits,  // [n_rows, n_vocab], row stride logits_stride
                   int32_t* out,         // [n_rows]
                   int n_rows, int n_vocab, int64_t logits_stride, cudaStream_t stream);

}  // namespace herd::kernels
