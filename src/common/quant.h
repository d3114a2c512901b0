// GGML's block quantizations (the weight types of GGUF files), dequantized to f32.
// Layouts follow ggml-common.h; a block covers 32 (Q8_0, Q4_0, Q4_1) or 256 (K-quants)
// consecutive elements of one row, so a row is always a whole number of blocks.
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace herd {

// dst[0, n) = the n elements stored at src in type t (quantized or plain); n is a whole
// number of t's blocks. One block at a time: callers dequantize a row, never a whole tensor.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

// One K-quant block (256 elements) as integers: element i is d*scale[g]*q[i] - dmin*min[g] with
// g = i / group. Q4_K and Q5_K have 8 groups of 32 with a min; Q6_K has 16 groups of 16 with
// signed scales, no min, and q already centred (q - 32).
struct KBlock {
  float d = 0.f, dmin = 0.f;
  int group = 32;
  int8_t q[256];
  int16_t scale[16] = {};
  int16_t min[16] = {};
};
// t: q4_k, q5_k or q6_k; b: one block of it.
KBlock unpack_k(DType t, const uint8_t* b);

// herd's blocks for quantized safetensors checkpoints, 32 consecutive elements of a row each, made
// by the loader (model/checkpoint-quant.h) from the checkpoint's tensors:
//  FP8:  f32 d, then 32 E4M3 bytes; x = d * e4m3(q). d is the row's (or the tensor's) scale.
//  INT4: f16 d, u8 zero point z, one byte of padding, then 16 bytes of nibbles as in Q4_0 (element i
//        the low nibble of byte i, element i + 16 its high nibble); x = d * (q - z). d and z are the
//        scale and zero point of the quantization group (AWQ, GPTQ) the block lies in.
struct Fp8Block {
  float d;
  uint8_t q[32];
};
static_assert(sizeof(Fp8Block) == 36);
struct Int4Block {
  uint16_t d;
  uint8_t z, pad;
  uint8_t qs[16];
};
static_assert(sizeof(Int4Block) == 20);

}  // namespace herd
