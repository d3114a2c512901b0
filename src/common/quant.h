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

}  // namespace herd
