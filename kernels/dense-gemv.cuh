// Decode matrix products with 16-bit weights (bf16, f16) or FP8 E4M3 codes with a scale per row: a
// few tokens against weights read once, straight from memory at the bandwidth bound, where a GEMM
// library tiles for many tokens. Up to three weights that share their input (q, k and v; gate and
// up) go in one launch.
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

// Tokens dense_gemv takes at once; more go to cuBLAS (bench-kernels measures the two side by side
// at 1 to 16 tokens on each projection shape).
constexpr int kDenseGemvMaxTokens = 8;
constexpr int kDenseGemvMaxParts = 3;

// One weight of a launch: out[t, r] = row_scale[r] * sum_c x[t, c] * w[r, c] for r < rows.
struct GemvPart {
  const void* w;           // [rows, cols] of the launch's weight type, 16-byte aligned
  float* out;              // [n_tokens, rows]
  int64_t rows;
  const float* row_scale;  // [rows], FP8 codes' scales; null for 16-bit weights
};

// Every part's product with the same x: [n_tokens, cols] f32, 16-byte aligned. wtype: bf16, f16 or
// fp8_e4m3 (every part with its row_scale); cols a multiple of 8 (16 for FP8); n_tokens 1 ..
// kDenseGemvMaxTokens; n_parts 1 .. kDenseGemvMaxParts. Products and sums in f32 (x is not rounded).
cudaError_t dense_gemv(const GemvPart* parts, int n_parts, ElemType wtype, int64_t cols, const float* x, int n_tokens,
                       cudaStream_t stream);

// SwiGLU's products in one launch: gate.out[t, r] = silu(gate's product) * up's product, with
// silu(g) = g / (1 + e^-g); up.out is not written. gate and up have the same rows; otherwise as
// dense_gemv.
cudaError_t dense_gemv_swiglu(const GemvPart& gate, const GemvPart& up, ElemType wtype, int64_t cols, const float* x,
                              int n_tokens, cudaStream_t stream);

}  // namespace herd::kernels
