// Embedding gather: one table row per token, converted to f32.
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

// out[t, :] = table[ids[t], :] as f32. An id of -1 yields zeros (a row another tensor-parallel rank
// holds); any other id outside [0, n_vocab) yields a row of NaN (the device cannot throw; NaN makes the
// bad id visible in the logits instead of silently reading garbage).
cudaError_t embed(const void* table,   // [n_vocab, n_embd] in table_type
                  ElemType table_type,
                  const int32_t* ids,  // [n_tokens]
                  float* out,          // [n_tokens, n_embd]
                  int n_tokens, int n_embd, int64_t n_vocab, cudaStream_t stream);

}  // namespace herd::kernels
