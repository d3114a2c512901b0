// The arithmetic of `herd quantize`: one row (or one group of a row) of float weights into the codes
// and scales of each output format, computed exactly as the tool that publishes the format does, in
// f32 with no fused multiply-adds (the file is built with -ffp-contract=off):
//  - FP8: compressed-tensors' FP8_DYNAMIC weights (a MinMax observer per output row, then the cast);
//  - AWQ: AutoAWQ's round-to-nearest (pseudo_quantize_tensor without the activation-aware search);
//  - GPTQ: GPTQModel's symmetric quantizer grid, rounded to nearest (no Hessian updates);
//  - GGML: llama.cpp's reference quantizers (quantize_row_*_ref, which llama-quantize uses without
//    an importance matrix) for Q8_0, Q4_0, Q4_1, Q4_K, Q5_K and Q6_K.
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace herd {

// compressed-tensors, per output row, in the model's dtype t (BF16, F16 or F32) as torch computes
// it: scale = t(max(|min(x, 0)|, max(x, 0)) / 448), or t's machine epsilon when that is 0; then
// q[i] = e4m3(clamp(t(x[i] / scale), -448, 448)) (round to nearest even). x holds values of type t.
// Returns the scale (a value of type t).
float quantize_fp8_row(DType t, const float* x, int64_t n, uint8_t* q);

// A 4-bit group: its F16 scale and its zero point (0..15); element i is scale * (q[i] - zero).
struct Int4Group {
  uint16_t scale = 0;  // F16 bits
  uint8_t zero = 0;
};

// AutoAWQ (w_bit 4, zero_point): scale = f16(max(max - min, 1e-5) / 15), zero = clamp(round(-min /
// scale), 0, 15), q[i] = clamp(round(x[i] / scale) + zero, 0, 15), rounding half to even, with the
// stored F16 scale (so the codes are the best ones for the scale the file holds). q: one code a byte.
Int4Group quantize_awq_group(const float* x, int64_t n, uint8_t* q);

// GPTQModel's symmetric 4-bit grid: m = max(|min(x, 0)|, max(x, 0)) (1 when the group is all zero),
// scale = f16(2m / 15) (from -m to m; m / 15 when no element is negative), zero 8, q[i] =
// clamp(round(x[i] / scale) + 8, 0, 15).
Int4Group quantize_gptq_group(const float* x, int64_t n, uint8_t* q);

// ggml's reference quantizer of type t (q8_0, q4_0, q4_1, q4_k, q5_k or q6_k) over n elements
// (whole blocks): the block bytes as llama.cpp lays them out (ggml-common.h).
void quantize_ggml_row(DType t, const float* x, int64_t n, uint8_t* dst);

}  // namespace herd
