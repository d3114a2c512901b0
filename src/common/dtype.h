// Element types of stored tensors and the scalar conversions between them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace herd {

// i32 is for ids and positions, never for weights. The q* types are GGML's block quantizations
// (common/quant.h): each packs a run of `block elements` of a row into `block bytes`.
// f8_e4m3 is FP8 as checkpoints store it (one byte an element, its scale in another tensor): the
// loader turns it into fp8, which carries the scale in each block. fp8 and int4 are herd's own
// block types for the quantized safetensors checkpoints (FP8, AWQ, GPTQ); common/quant.h has them.
enum class DType : uint8_t { f32, f16, bf16, i32, q8_0, q4_0, q4_1, q4_k, q5_k, q6_k, f8_e4m3, fp8, int4 };

struct DTypeBlock {
  int64_t elems;  // elements per block: 1 for plain types, 32 or 256 for quantized ones
  size_t bytes;   // bytes per block
};
DTypeBlock dtype_block(DType t);
bool is_quantized(DType t);
// Bytes of `numel` elements; numel must be a whole number of blocks (rows are, by construction).
size_t dtype_nbytes(DType t, int64_t numel);
// Bytes of one element of a plain type; an internal error for a quantized one.
size_t dtype_size(DType t);
std::string_view dtype_name(DType t);
// "F32"/"F16"/"BF16"/"I32"/"F8_E4M3" as safetensors spells them; nullopt for anything else.
std::optional<DType> dtype_from_safetensors(std::string_view s);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// FP8 E4M3 ("e4m3fn": no infinities, 0x7f and 0xff are NaN, largest finite 448).
float e4m3_to_f32(uint8_t b);
// Round to nearest even, saturating at +-448 (as torch's cast of a finite value does not: it
// gives NaN past 464); NaN stays NaN.
uint8_t f32_to_e4m3(float f);

}  // namespace herd
