// Q4_K, Q5_K and Q6_K weight rows against Q8Block activations. A 256-element weight block meets
// eight activation blocks; each of its groups has its own scale (and min), so a group's integer
// dot product is scaled on its own (block layouts: common/quant.h, unpack_k).
//   Q4_K, Q5_K: 8 groups of 32, w = d*scale*q - dmin*min (q in [0, 16) or [0, 32)); the min term
//               is dmin*min*a.d*(sum of the activation block's quants).
//   Q6_K:       16 groups of 16, w = d*scale*(q - 32), scale a signed int8.
// The SIMD levels keep the quants unsigned (bytes times signed activation bytes: maddubs, or VNNI
// dpbusd), so the mins and Q6_K's -32 meet the activation sums, gathered for the block's eight
// activation blocks at once. Q4_K/Q5_K scale each group's int32 lanes in f32 by d*scale*a.d;
// Q6_K multiplies its two groups per activation block by their int8 scales in int16 (madd, or
// VNNI dpwssd) and then by d*a.d. AVX-512 puts two activation blocks in each register.
#include <cstring>

#include "backend/cpu/cpu-kernels.h"
#include "backend/cpu/simd-x86.h"
#include "common/quant.h"

namespace herd {
namespace {

float dot_k_scalar(DType t, int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  const size_t block_bytes = dtype_block(t).bytes;
  float s = 0.f;
  for (int64_t blk = 0; blk < n / 256; ++blk, b += block_bytes, a += 8) {
    const KBlock k = unpack_k(t, b);
    for (int g = 0; g < 256 / k.group; ++g) {
      const Q8Block& ab = a[g * k.group / 32];
      const int off = g * k.group % 32;  // 0, or 16 for Q6_K's odd groups
      int32_t isum = 0;
      for (int i = 0; i < k.group; ++i) isum += int32_t(k.q[g * k.group + i]) * ab.q[off + i];
      s += k.d * float(k.scale[g]) * ab.d * float(isum);
      if (k.group == 32) s -= k.dmin * float(k.min[g]) * ab.d * float(int32_t(ab.sum[0]) + ab.sum[1]);
    }
  }
  return s;
}

float dot_q4_k_scalar(int64_t n, const void* w, const Q8Block* a) { return dot_k_scalar(DType::q4_k, n, w, a); }
float dot_q5_k_scalar(int64_t n, const void* w, const Q8Block* a) { return dot_k_scalar(DType::q5_k, n, w, a); }
float dot_q6_k_scalar(int64_t n, const void* w, const Q8Block* a) { return dot_k_scalar(DType::q6_k, n, w, a); }

#if defined(__x86_64__)
using namespace x86;

constexpr int kQ4_K = 144, kQ5_K = 176, kQ6_K = 210;  // block bytes

// Q4_K/Q5_K's 12 bytes of 6-bit scales and mins (quant.cpp, scale_min_k4) as bytes: out[0, 8)
// the scales, out[8, 16) the mins, unpacked a 32-bit word at a time.
inline void scales_mins_k4(const uint8_t* packed, uint32_t out[4]) {
  constexpr uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, low2 = 0x03030303;
  uint32_t s[3];
  std::memcpy(s, packed, 12);
  out[0] = s[0] & low6;
  out[1] = (s[2] & low4) | (((s[0] >> 6) & low2) << 4);
  out[2] = s[1] & low6;
  out[3] = ((s[2] >> 4) & low4) | (((s[1] >> 6) & low2) << 4);
}

// The parts of a Q4_K/Q5_K block that do not depend on the quants: sc[g] = d*scale[g]*a[g].d
// for the eight groups, and the block's min term added to `mins` (subtracted at the end).
HERD_AVX2 inline __m256 k4_scales(const uint8_t* b, const Q8Block* a, __m256* mins) {
  uint32_t u[4];
  scales_mins_k4(b + 4, u);
  const __m256 scale = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(u))));
  const __m256 min = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(u + 2))));
  const __m256 ad = act_d8(a);
  *mins = _mm256_fmadd_ps(_mm256_mul_ps(min, _mm256_set1_ps(f16(b + 2))), _mm256_mul_ps(ad, act_sum8(a)), *mins);
  return _mm256_mul_ps(_mm256_mul_ps(scale, _mm256_set1_ps(f16(b))), ad);
}

// Q6_K's -32: d * sum over activation blocks k of a[k].d * (scale[2k]*sum[0] + scale[2k+1]*sum[1]),
// added to `offs` (times 32 subtracted at the end). scales: the block's 16 int8 scales.
HERD_AVX2 inline void q6_offsets(__m128i scales, const __m256 dad, const Q8Block* a, __m256* offs) {
  const __m256i per_block = _mm256_madd_epi16(act_sum_pairs8(a), _mm256_cvtepi8_epi16(scales));
  *offs = _mm256_fmadd_ps(_mm256_cvtepi32_ps(per_block), dad, *offs);
}

// ---- AVX2: one activation block (32 quants) per register.

template <bool five_bits>
HERD_AVX2 float dot_k4_avx2(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  const __m256i low4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10);
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, mins = _mm256_setzero_ps();
  for (int64_t blk = 0; blk < n / 256; ++blk, b += five_bits ? kQ5_K : kQ4_K, a += 8) {
    alignas(32) float sc[8];
    _mm256_store_ps(sc, k4_scales(b, a, &mins));
    const uint8_t* qs = b + (five_bits ? 48 : 16);
    __m256i qh = five_bits ? load32(b + 16) : _mm256_setzero_si256();  // bit 2j, 2j+1: pair j
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m256i q = load32(qs + 32 * j);
      __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
      if (five_bits) {
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(qh, 4), bit4));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(qh, 3), bit4));
        qh = _mm256_srli_epi16(qh, 2);
      }
      acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8s8(lo, load32(a[2 * j].q))), _mm256_broadcast_ss(sc + 2 * j), acc[0]);
      acc[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8s8(hi, load32(a[2 * j + 1].q))), _mm256_broadcast_ss(sc + 2 * j + 1), acc[1]);
    }
  }
  return hsum(_mm256_add_ps(acc[0], acc[1])) - hsum(mins);
}

HERD_AVX2 float dot_q6_k_avx2(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
  // Byte shuffle that spreads scales 2k, 2k+1 over eight bytes each, for k = 0.
  const __m128i spread = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, offs = _mm256_setzero_ps();
  for (int64_t blk = 0; blk < n / 256; ++blk, b += kQ6_K, a += 8) {
    const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192));
    const __m256 dad = _mm256_mul_ps(act_d8(a), _mm256_set1_ps(f16(b + 208)));
    q6_offsets(scales, dad, a, &offs);
    alignas(32) float s[8];
    _mm256_store_ps(s, dad);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b + 64 * h;
      const __m256i l0 = load32(ql), l1 = load32(ql + 32), qh = load32(b + 128 + 32 * h);
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45)),
          _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_and_si256(qh, bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45)),
      };
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const int k = 4 * h + j;
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, _mm_add_epi8(spread, _mm_set1_epi8(char(2 * k)))));
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q[j], load32(a[k].q)), sc);
        acc[j & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(s + k), acc[j & 1]);
      }
    }
  }
  return hsum(_mm256_add_ps(acc[0], acc[1])) - 32.f * hsum(offs);
}

// ---- AVX-512: two activation blocks (64 quants) per register, VNNI.

template <bool five_bits>
HERD_AVX512 float dot_k4_avx512(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  const __m512i low4 = _mm512_set1_epi8(0x0F), bit4 = _mm512_set1_epi8(0x10);
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  __m256 mins = _mm256_setzero_ps();
  for (int64_t blk = 0; blk < n / 256; ++blk, b += five_bits ? kQ5_K : kQ4_K, a += 8) {
    const __m256 sc = k4_scales(b, a, &mins);
    const uint8_t* qs = b + (five_bits ? 48 : 16);
    const __m512i qh = five_bits ? _mm512_broadcast_i64x4(load32(b + 16)) : _mm512_setzero_si512();
    // Where the fifth bits of pair j lie in qh: bit 2j (low half), bit 2j + 1 (high half).
    __m512i hbit = _mm512_inserti64x4(_mm512_set1_epi8(1), _mm256_set1_epi8(2), 1);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      // Group 2j: the low nibbles of the 32 bytes, group 2j+1: their high nibbles.
      const __m512i q = _mm512_broadcast_i64x4(load32(qs + 32 * j));
      __m512i wq = _mm512_and_si512(_mm512_mask_srli_epi16(q, 0xFFFF0000, q, 4), low4);
      if (five_bits) {
        wq = _mm512_mask_add_epi8(wq, _mm512_test_epi8_mask(qh, hbit), wq, bit4);
        hbit = _mm512_slli_epi16(hbit, 2);
      }
      const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, act_q_pair(a + 2 * j));
      acc[j & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), pair_lanes(sc, 2 * j), acc[j & 1]);
    }
  }
  return hsum(fold(_mm512_add_ps(acc[0], acc[1]))) - hsum(mins);
}

HERD_AVX512 float dot_q6_k_avx512(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  const __m512i low4 = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30);
  // int16 lane i of the scales for activation blocks k, k+1 (k even): scale 2k + i / 8.
  const __m512i spread = _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16,
                                                            15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 3);
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  __m256 offs = _mm256_setzero_ps();
  for (int64_t blk = 0; blk < n / 256; ++blk, b += kQ6_K, a += 8) {
    const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192));
    const __m256 dad = _mm256_mul_ps(act_d8(a), _mm256_set1_ps(f16(b + 208)));
    q6_offsets(scales, dad, a, &offs);
    const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(scales));
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      // ql[0, 32) and ql[32, 64) give elements [0, 64) (low nibbles) and [64, 128) (high); the
      // top bits of each element pair come from qh, two bits further up for the upper half.
      const __m512i ql = _mm512_loadu_si512(b + 64 * h);
      const __m512i qh0 = _mm512_broadcast_i64x4(load32(b + 128 + 32 * h));
      const __m512i qh = _mm512_mask_srli_epi16(qh0, 0xFFFF0000, qh0, 2);
      const __m512i q[2] = {
          _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_and_si512(_mm512_slli_epi16(qh, 4), bits45)),
          _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4), _mm512_and_si512(qh, bits45)),
      };
#pragma GCC unroll 2
      for (int j = 0; j < 2; ++j) {
        const int k = 4 * h + 2 * j;
        const __m512i sc = _mm512_permutexvar_epi16(_mm512_add_epi16(spread, _mm512_set1_epi16(short(2 * k))), sc16);
        const __m512i p = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(q[j], act_q_pair(a + k)), sc);
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), pair_lanes(dad, k), acc[j]);
      }
    }
  }
  return hsum(fold(_mm512_add_ps(acc[0], acc[1]))) - 32.f * hsum(offs);
}

#endif

}  // namespace

DotQ8Fn dot_q8_kquant_kernel(DType t, CpuLevel level) {
  switch (level) {
    case CpuLevel::scalar:
      return t == DType::q4_k ? dot_q4_k_scalar : t == DType::q5_k ? dot_q5_k_scalar
           : t == DType::q6_k ? dot_q6_k_scalar : nullptr;
#if defined(__x86_64__)
    case CpuLevel::avx2:
      return t == DType::q4_k ? dot_k4_avx2<false> : t == DType::q5_k ? dot_k4_avx2<true>
           : t == DType::q6_k ? dot_q6_k_avx2 : nullptr;
    case CpuLevel::avx512:
      return t == DType::q4_k ? dot_k4_avx512<false> : t == DType::q5_k ? dot_k4_avx512<true>
           : t == DType::q6_k ? dot_q6_k_avx512 : nullptr;
#else
    default: return nullptr;
#endif
  }
  return nullptr;
}

// No four-row kernels yet: the matmul calls the single-row kernel four times.
DotQ8x4Fn dot_q8x4_kquant_kernel(DType, CpuLevel) { return nullptr; }

}  // namespace herd
