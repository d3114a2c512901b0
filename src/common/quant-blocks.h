// The block layouts of GGML's quantized types, shared by dequantization (quant.h) and the
// quantized dot products (quant-dot.h).
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace herd {

float f16_at(const uint8_t* p);  // a little-endian f16 at p, as f32

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
KBlock unpack_k(DType t, const uint8_t* block);  // t: q4_k, q5_k or q6_k

}  // namespace herd
