#include "common/quant.h"

#include <cstring>

#include "common/check.h"

namespace herd {
namespace {

float f16_at(const uint8_t* p) {  // a little-endian f16 at p, as f32
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// Q8_0: f16 scale d, then 32 int8 q; x = d * q.
void block_q8_0(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  const auto* q = reinterpret_cast<const int8_t*>(b + 2);
  for (int i = 0; i < 32; ++i) y[i] = d * float(q[i]);
}

// Q4_0: f16 d, then 16 bytes of nibbles; element i is the low nibble of byte i, element
// i + 16 its high nibble; x = d * (q - 8).
void block_q4_0(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  const uint8_t* q = b + 2;
  for (int i = 0; i < 16; ++i) {
    y[i] = d * float(int(q[i] & 0xF) - 8);
    y[i + 16] = d * float(int(q[i] >> 4) - 8);
  }
}

// Q4_1: f16 d, f16 m, then nibbles as in Q4_0; x = d * q + m.
void block_q4_1(const uint8_t* b, float* y) {
  const float d = f16_at(b), m = f16_at(b + 2);
  const uint8_t* q = b + 4;
  for (int i = 0; i < 16; ++i) {
    y[i] = d * float(q[i] & 0xF) + m;
    y[i + 16] = d * float(q[i] >> 4) + m;
  }
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block, packed in 12 bytes:
// sub-blocks 0-3 in the low 6 bits of bytes 0-3 (scales) and 4-7 (mins); sub-blocks 4-7 take
// their low 4 bits from bytes 8-11 and their top 2 bits from the spare bits of bytes 0-7.
void scale_min_k4(int j, const uint8_t* s, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = uint8_t((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    *min = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

void block_fp8(const uint8_t* b, float* y) {
  Fp8Block blk;
  std::memcpy(&blk, b, sizeof blk);
  for (int i = 0; i < 32; ++i) y[i] = blk.d * e4m3_to_f32(blk.q[i]);
}

void block_int4(const uint8_t* b, float* y) {
  Int4Block blk;
  std::memcpy(&blk, b, sizeof blk);
  const float d = f16_to_f32(blk.d);
  for (int i = 0; i < 16; ++i) {
    y[i] = d * float(int(blk.qs[i] & 0xF) - int(blk.z));
    y[i + 16] = d * float(int(blk.qs[i] >> 4) - int(blk.z));
  }
}

void block_k(DType t, const uint8_t* b, float* y) {
  const KBlock k = unpack_k(t, b);
  for (int g = 0; g < 256 / k.group; ++g) {
    const float d = k.d * float(k.scale[g]), m = k.dmin * float(k.min[g]);
    for (int l = g * k.group; l < (g + 1) * k.group; ++l) y[l] = d * float(k.q[l]) - m;
  }
}

}  // namespace

// Q4_K: f16 d, f16 dmin, 12 bytes of scales, 128 bytes of nibbles. Eight sub-blocks of 32;
// each 64 elements share 32 bytes (low nibbles first, then high); x = d*scale*q - dmin*min.
// Q5_K adds 32 bytes qh after the scales: bit 2k (low nibbles) and 2k+1 (high nibbles) of
// qh[l] is the fifth bit of element l of the k-th 64-element group.
// Q6_K: 128 bytes ql (low 4 bits), 64 bytes qh (top 2 bits), 16 int8 scales (one per 16
// elements), f16 d; x = d * scale * (q - 32). Each half of 128 elements uses 64 ql and 32 qh.
KBlock unpack_k(DType t, const uint8_t* b) {
  KBlock k;
  if (t == DType::q6_k) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
    k.d = f16_at(b + 208);
    k.group = 16;
    for (int g = 0; g < 16; ++g) k.scale[g] = sc[g];
    for (int half = 0; half < 2; ++half, ql += 64, qh += 32) {
      int8_t* q = k.q + 128 * half;
      for (int l = 0; l < 32; ++l) {
        q[l] = int8_t(int((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
        q[l + 32] = int8_t(int((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
        q[l + 64] = int8_t(int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        q[l + 96] = int8_t(int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
    return k;
  }
  const bool five_bits = t == DType::q5_k;
  k.d = f16_at(b);
  k.dmin = f16_at(b + 2);
  k.group = 32;
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* q = five_bits ? b + 48 : b + 16;
  for (int g = 0; g < 8; ++g) {
    uint8_t sc, mn;
    scale_min_k4(g, scales, &sc, &mn);
    k.scale[g] = sc;
    k.min[g] = mn;
  }
  for (int g = 0; g < 4; ++g, q += 32) {
    const uint8_t lo_bit = uint8_t(1u << (2 * g)), hi_bit = uint8_t(2u << (2 * g));
    for (int l = 0; l < 32; ++l) {
      k.q[64 * g + l] = int8_t((q[l] & 0xF) + (five_bits && (qh[l] & lo_bit) ? 16 : 0));
      k.q[64 * g + 32 + l] = int8_t((q[l] >> 4) + (five_bits && (qh[l] & hi_bit) ? 16 : 0));
    }
  }
  return k;
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  const DTypeBlock blk = dtype_block(t);
  HERD_CHECK(n % blk.elems == 0, n, " elements are not whole blocks of ", dtype_name(t));
  const auto* b = static_cast<const uint8_t*>(src);
  switch (t) {
    case DType::f32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case DType::bf16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, b + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case DType::f16:
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_at(b + 2 * i);
      return;
    case DType::f8_e4m3:
      for (int64_t i = 0; i < n; ++i) dst[i] = e4m3_to_f32(b[i]);
      return;
    case DType::i32: break;
    default:
      for (int64_t i = 0; i < n / blk.elems; ++i, b += blk.bytes, dst += blk.elems) {
        switch (t) {
          case DType::q8_0: block_q8_0(b, dst); break;
          case DType::q4_0: block_q4_0(b, dst); break;
          case DType::q4_1: block_q4_1(b, dst); break;
          case DType::q4_k:
          case DType::q5_k:
          case DType::q6_k: block_k(t, b, dst); break;
          case DType::fp8: block_fp8(b, dst); break;
          case DType::int4: block_int4(b, dst); break;
          default: break;
        }
      }
      return;
  }
  HERD_CHECK(false, "cannot convert ", dtype_name(t), " to f32");
}

}  // namespace herd
