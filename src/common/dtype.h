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
enum class DType : uint8_t { f32, f16, bf16, i32, q8_0, q4_0, q4_1, q4_k, q5_k, q6_k };

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
// "F32"/"F16"/"BF16" as safetensors spells them; nullopt for anything else.
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

}  // namespace herd
