// Quantized weights kept quantized on the device: GGML's blocks (GGUF Q8_0, Q4_0, Q4_1, Q4_K, Q5_K,
// Q6_K) and herd's FP8 and INT4 blocks (quantized safetensors checkpoints), each row a whole number
// of blocks in its file layout (src/common/quant.h describes them; the tests hold these decoders to
// the host's dequantize_row). Weights are read once per product and widened in registers:
//  - quant_gemv: a few tokens (decode), one warp per weight row, f32 activations, f32 sums;
//  - quant_dequantize: rows widened to BF16, for the tensor-core GEMM of many tokens (prefill);
//  - quant_embed: the embedding gather of a quantized table.
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

enum class QuantType : uint8_t { q8_0, q4_0, q4_1, q4_k, q5_k, q6_k, fp8, int4 };

// Bytes of one row of `cols` elements (a multiple of the type's block: 32, or 256 for the K types).
int64_t quant_row_bytes(QuantType t, int64_t cols);

// Tokens quant_gemv takes at once; more go through quant_dequantize and a GEMM.
constexpr int kQuantGemvMaxTokens = 8;

// out[i, r] = sum_c x[i, c] * w[r, c] for i < n_tokens (1 to kQuantGemvMaxTokens), r < rows.
cudaError_t quant_gemv(const void* w,  // [rows, cols] in t's blocks
                       QuantType t, int64_t rows, int64_t cols,
                       const float* x,  // [n_tokens, cols]
                       float* out,      // [n_tokens, rows]
                       int n_tokens, cudaStream_t stream);

// out[r, c] = w[r, c] as BF16 (round to nearest even), rows [0, rows).
cudaError_t quant_dequantize(const void* w, QuantType t, int64_t rows, int64_t cols,
                             void* out,  // [rows, cols] bf16
                             cudaStream_t stream);

// out[i, :] = table[ids[i], :] as f32; an id of -1 gives zeros, one outside [0, n_vocab) NaN (as embed).
cudaError_t quant_embed(const void* table, QuantType t, int64_t n_vocab, int64_t cols, const int32_t* ids,
                        float* out,  // [n_tokens, cols]
                        int n_tokens, cudaStream_t stream);

}  // namespace herd::kernels
