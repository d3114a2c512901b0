#include "common/dtype.h"

#include <bit>
#include <cmath>
#include <limits>

#include "common/check.h"

namespace herd {

DTypeBlock dtype_block(DType t) {
  switch (t) {
    case DType::f32:
    case DType::i32: return {1, 4};
    case DType::f16:
    case DType::bf16: return {1, 2};
    // Block layouts: common/quant.cpp.
    case DType::q8_0: return {32, 34};
    case DType::q4_0: return {32, 18};
    case DType::q4_1: return {32, 20};
    case DType::q4_k: return {256, 144};
    case DType::q5_k: return {256, 176};
    case DType::q6_k: return {256, 210};
    case DType::f8_e4m3: return {1, 1};
    case DType::fp8: return {32, 36};
    case DType::int4: return {32, 20};
  }
  return {1, 0};
}

bool is_quantized(DType t) { return dtype_block(t).elems > 1; }

size_t dtype_nbytes(DType t, int64_t numel) {
  const DTypeBlock b = dtype_block(t);
  HERD_CHECK(numel % b.elems == 0, numel, " elements are not whole blocks of ", dtype_name(t));
  return size_t(numel / b.elems) * b.bytes;
}

size_t dtype_size(DType t) {
  HERD_CHECK(!is_quantized(t), dtype_name(t), " has no per-element size");
  return dtype_block(t).bytes;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
    case DType::q8_0: return "Q8_0";
    case DType::q4_0: return "Q4_0";
    case DType::q4_1: return "Q4_1";
    case DType::q4_k: return "Q4_K";
    case DType::q5_k: return "Q5_K";
    case DType::q6_k: return "Q6_K";
    case DType::f8_e4m3: return "F8_E4M3";
    case DType::fp8: return "FP8";
    case DType::int4: return "INT4";
  }
  return "?";
}

std::optional<DType> dtype_from_safetensors(std::string_view s) {
  if (s == "F32") return DType::f32;
  if (s == "F16") return DType::f16;
  if (s == "BF16") return DType::bf16;
  if (s == "I32") return DType::i32;
  if (s == "F8_E4M3") return DType::f8_e4m3;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    bits = sign | (uint32_t(112 - e) << 23) | ((mant & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t f32_to_f16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return uint16_t(sign | 0x7e00u);  // NaN
  if (absx >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // overflow rounds to inf
  if (absx < 0x38800000u) {                                  // subnormal or zero in f16
    // 0.5f has an ulp of 2^-24, the f16 subnormal step, so the float add rounds a to
    // that grid (nearest even) and leaves the f16 code in the low mantissa bits.
    const float a = std::bit_cast<float>(absx);
    return uint16_t(sign | (std::bit_cast<uint32_t>(a + 0.5f) - 0x3f000000u));
  }
  uint32_t m = absx + 0xc8000fffu + ((absx >> 13) & 1u);  // rebias exponent (-112<<23) and round
  return uint16_t(sign | (m >> 13));
}

float e4m3_to_f32(uint8_t b) {
  const float sign = b & 0x80u ? -1.f : 1.f;
  const int exp = (b >> 3) & 0xf, mant = b & 7;
  if (exp == 0xf && mant == 7) return std::numeric_limits<float>::quiet_NaN();
  if (exp == 0) return sign * std::ldexp(float(mant), -9);  // subnormal: mant / 8 * 2^-6
  return sign * std::ldexp(float(8 + mant), exp - 10);      // (1 + mant / 8) * 2^(exp - 7)
}

uint8_t f32_to_e4m3(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7f;  // NaN
  const uint8_t sign = uint8_t((u >> 24) & 0x80u);
  u &= 0x7fffffffu;
  const float a = std::bit_cast<float>(u);
  if (a >= 448.f) return sign | 0x7e;
  // Below the smallest normal (2^-6) the codes are multiples of 2^-9; nearbyint rounds to even.
  if (a < 0.015625f) return uint8_t(sign | int(std::nearbyint(a * 512.f)));
  // Normal: keep 3 of the 23 mantissa bits, rounding the 20 dropped ones to nearest even (a carry
  // moves into the exponent), and rebias the exponent from 127 to 7. Checked against a search over
  // every code for every float below 480.
  const uint32_t r = (u + 0x7ffffu + ((u >> 20) & 1u)) >> 20;
  return uint8_t(sign | (r - (120u << 3)));
}

}  // namespace herd
