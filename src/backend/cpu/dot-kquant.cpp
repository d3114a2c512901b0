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
// for the eight groups, and the block's min term added to `mins` (subtracted at the end). ad,
// adsum: the activation blocks' d and d * sum, shared by the rows.
HERD_AVX2 inline __m256 k4_scales(const uint8_t* b, __m256 ad, __m256 adsum, __m256* mins) {
  uint32_t u[4];
  scales_mins_k4(b + 4, u);
  const __m256 scale = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(u))));
  const __m256 min = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(u + 2))));
  *mins = _mm256_fmadd_ps(_mm256_mul_ps(min, _mm256_set1_ps(f16(b + 2))), adsum, *mins);
  return _mm256_mul_ps(_mm256_mul_ps(scale, _mm256_set1_ps(f16(b))), ad);
}

// Q6_K's -32: d * sum over activation blocks k of a[k].d * (scale[2k]*sum[0] + scale[2k+1]*sum[1]),
// added to `offs` (times 32 subtracted at the end). scales: the block's 16 int8 scales; sums:
// act_sum_pairs8 of the activation blocks, shared by the rows.
HERD_AVX2 inline void q6_offsets(__m128i scales, const __m256 dad, __m256i sums, __m256* offs) {
  const __m256i per_block = _mm256_madd_epi16(sums, _mm256_cvtepi8_epi16(scales));
  *offs = _mm256_fmadd_ps(_mm256_cvtepi32_ps(per_block), dad, *offs);
}

// Every SIMD kernel below computes R rows (1 or 4) at w + r * row_bytes against the same
// activations: per 256-element block the activation side (quants, scales, sums) is loaded once
// for all R rows, and each row keeps its own accumulators, so four rows are four independent
// FMA chains whose weight loads interleave; one row alternates two chains instead. The
// single-row and four-row kernels are the same code, so they agree exactly.
template <int R>
constexpr int kChains = R == 1 ? 2 : 1;

template <int R>
struct Rows {
  const uint8_t* p[R];
  Rows(const void* w, size_t row_bytes) {
    for (int r = 0; r < R; ++r) p[r] = static_cast<const uint8_t*>(w) + size_t(r) * row_bytes;
  }
};

// ---- AVX2: one activation block (32 quants) per register.

template <int R, bool five_bits>
HERD_AVX2 void dot_k4_avx2(int64_t n, const void* w, size_t row_bytes, const Q8Block* a, float* out) {
  constexpr int C = kChains<R>, kBytes = five_bits ? kQ5_K : kQ4_K;
  const Rows<R> rows(w, row_bytes);
  const __m256i low4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10);
  __m256 acc[R][C], mins[R];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
    mins[r] = _mm256_setzero_ps();
  }
  for (int64_t blk = 0; blk < n / 256; ++blk, a += 8) {
    const __m256 ad = act_d8(a), adsum = _mm256_mul_ps(ad, act_sum8(a));
    alignas(32) float sc[R][8];
    __m256i qh[R];  // bit 2j, 2j+1: pair j
    for (int r = 0; r < R; ++r) {
      const uint8_t* b = rows.p[r] + blk * kBytes;
      _mm256_store_ps(sc[r], k4_scales(b, ad, adsum, &mins[r]));
      qh[r] = five_bits ? load32(b + 16) : _mm256_setzero_si256();
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m256i a0 = load32(a[2 * j].q), a1 = load32(a[2 * j + 1].q);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m256i q = load32(rows.p[r] + blk * kBytes + (five_bits ? 48 : 16) + 32 * j);
        __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
        if (five_bits) {
          lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(qh[r], 4), bit4));
          hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(qh[r], 3), bit4));
          qh[r] = _mm256_srli_epi16(qh[r], 2);
        }
        acc[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8s8(lo, a0)), _mm256_broadcast_ss(sc[r] + 2 * j), acc[r][0]);
        acc[r][C - 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8s8(hi, a1)), _mm256_broadcast_ss(sc[r] + 2 * j + 1), acc[r][C - 1]);
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(C == 1 ? acc[r][0] : _mm256_add_ps(acc[r][0], acc[r][C - 1])) - hsum(mins[r]);
}

template <int R>
HERD_AVX2 void dot_q6_k_avx2(int64_t n, const void* w, size_t row_bytes, const Q8Block* a, float* out) {
  constexpr int C = kChains<R>;
  const Rows<R> rows(w, row_bytes);
  const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
  // Byte shuffle that spreads scales 2k, 2k+1 over eight bytes each, for k = 0.
  const __m128i spread = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  __m256 acc[R][C], offs[R];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
    offs[r] = _mm256_setzero_ps();
  }
  for (int64_t blk = 0; blk < n / 256; ++blk, a += 8) {
    const __m256 ad = act_d8(a);
    const __m256i sums = act_sum_pairs8(a);
    __m128i scales[R];
    alignas(32) float s[R][8];
    for (int r = 0; r < R; ++r) {
      const uint8_t* b = rows.p[r] + blk * kQ6_K;
      scales[r] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192));
      const __m256 dad = _mm256_mul_ps(ad, _mm256_set1_ps(f16(b + 208)));
      q6_offsets(scales[r], dad, sums, &offs[r]);
      _mm256_store_ps(s[r], dad);
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const int k = 4 * h + j;
        const __m256i aq = load32(a[k].q);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          // Quants of activation block k: the low (j < 2) or high nibbles of ql's 32 bytes at
          // 64h + 32(j % 2), the top bits from qh's 32 bytes at 128 + 32h, bits 2j and 2j + 1.
          const uint8_t* b = rows.p[r] + blk * kQ6_K;
          const __m256i l = load32(b + 64 * h + 32 * (j % 2)), qh = load32(b + 128 + 32 * h);
          const __m256i lq = _mm256_and_si256(j < 2 ? l : _mm256_srli_epi16(l, 4), low4);
          const __m256i hq = j == 0 ? _mm256_slli_epi16(qh, 4) : j == 1 ? _mm256_slli_epi16(qh, 2) : j == 2 ? qh : _mm256_srli_epi16(qh, 2);
          const __m256i q = _mm256_or_si256(lq, _mm256_and_si256(hq, bits45));
          const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales[r], _mm_add_epi8(spread, _mm_set1_epi8(char(2 * k)))));
          const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, aq), sc);
          acc[r][j % C] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(s[r] + k), acc[r][j % C]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(C == 1 ? acc[r][0] : _mm256_add_ps(acc[r][0], acc[r][C - 1])) - 32.f * hsum(offs[r]);
}

// ---- AVX-512: two activation blocks (64 quants) per register, VNNI.

template <int R, bool five_bits>
HERD_AVX512 void dot_k4_avx512(int64_t n, const void* w, size_t row_bytes, const Q8Block* a, float* out) {
  constexpr int C = kChains<R>, kBytes = five_bits ? kQ5_K : kQ4_K;
  const Rows<R> rows(w, row_bytes);
  const __m512i low4 = _mm512_set1_epi8(0x0F), bit4 = _mm512_set1_epi8(0x10);
  __m512 acc[R][C];
  __m256 mins[R];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
    mins[r] = _mm256_setzero_ps();
  }
  for (int64_t blk = 0; blk < n / 256; ++blk, a += 8) {
    const __m256 ad = act_d8(a), adsum = _mm256_mul_ps(ad, act_sum8(a));
    __m256 sc[R];
    __m512i qh[R];
    for (int r = 0; r < R; ++r) {
      const uint8_t* b = rows.p[r] + blk * kBytes;
      sc[r] = k4_scales(b, ad, adsum, &mins[r]);
      qh[r] = five_bits ? _mm512_broadcast_i64x4(load32(b + 16)) : _mm512_setzero_si512();
    }
    // Where the fifth bits of pair j lie in qh: bit 2j (low half), bit 2j + 1 (high half).
    __m512i hbit = _mm512_inserti64x4(_mm512_set1_epi8(1), _mm256_set1_epi8(2), 1);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m512i aq = act_q_pair(a + 2 * j);
      for (int r = 0; r < R; ++r) {
        // Group 2j: the low nibbles of the 32 bytes, group 2j+1: their high nibbles.
        const __m512i q = _mm512_broadcast_i64x4(load32(rows.p[r] + blk * kBytes + (five_bits ? 48 : 16) + 32 * j));
        __m512i wq = _mm512_and_si512(_mm512_mask_srli_epi16(q, 0xFFFF0000, q, 4), low4);
        if (five_bits) wq = _mm512_mask_add_epi8(wq, _mm512_test_epi8_mask(qh[r], hbit), wq, bit4);
        const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, aq);
        acc[r][j % C] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), pair_lanes(sc[r], 2 * j), acc[r][j % C]);
      }
      if (five_bits) hbit = _mm512_slli_epi16(hbit, 2);
    }
  }
  for (int r = 0; r < R; ++r)
    out[r] = hsum(fold(C == 1 ? acc[r][0] : _mm512_add_ps(acc[r][0], acc[r][C - 1]))) - hsum(mins[r]);
}

template <int R>
HERD_AVX512 void dot_q6_k_avx512(int64_t n, const void* w, size_t row_bytes, const Q8Block* a, float* out) {
  constexpr int C = 2;  // one chain per j below; four rows make eight
  const Rows<R> rows(w, row_bytes);
  const __m512i low4 = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30);
  // int16 lane i of the scales for activation blocks k, k+1 (k even): scale 2k + i / 8.
  const __m512i spread = _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16,
                                                            15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 3);
  __m512 acc[R][C];
  __m256 offs[R];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
    offs[r] = _mm256_setzero_ps();
  }
  for (int64_t blk = 0; blk < n / 256; ++blk, a += 8) {
    const __m256 ad = act_d8(a);
    const __m256i sums = act_sum_pairs8(a);
    __m256 dad[R];
    __m512i sc16[R];
    for (int r = 0; r < R; ++r) {
      const uint8_t* b = rows.p[r] + blk * kQ6_K;
      const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192));
      dad[r] = _mm256_mul_ps(ad, _mm256_set1_ps(f16(b + 208)));
      q6_offsets(scales, dad[r], sums, &offs[r]);
      sc16[r] = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(scales));
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 2
      for (int j = 0; j < 2; ++j) {
        const int k = 4 * h + 2 * j;
        const __m512i aq = act_q_pair(a + k);
        for (int r = 0; r < R; ++r) {
          // ql[0, 32) and ql[32, 64) give elements [0, 64) (low nibbles, j = 0) and [64, 128)
          // (high, j = 1); the top bits of each element pair come from qh, two bits further up
          // for the upper half.
          const uint8_t* b = rows.p[r] + blk * kQ6_K;
          const __m512i ql = _mm512_loadu_si512(b + 64 * h);
          const __m512i qh0 = _mm512_broadcast_i64x4(load32(b + 128 + 32 * h));
          const __m512i qh = _mm512_mask_srli_epi16(qh0, 0xFFFF0000, qh0, 2);
          const __m512i q = j == 0 ? _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_and_si512(_mm512_slli_epi16(qh, 4), bits45))
                                   : _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4), _mm512_and_si512(qh, bits45));
          const __m512i sc = _mm512_permutexvar_epi16(_mm512_add_epi16(spread, _mm512_set1_epi16(short(2 * k))), sc16[r]);
          const __m512i p = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(q, aq), sc);
          acc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), pair_lanes(dad[r], k), acc[r][j]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(fold(_mm512_add_ps(acc[r][0], acc[r][1]))) - 32.f * hsum(offs[r]);
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
      return t == DType::q4_k ? one_row_avx2<dot_k4_avx2<1, false>> : t == DType::q5_k ? one_row_avx2<dot_k4_avx2<1, true>>
           : t == DType::q6_k ? one_row_avx2<dot_q6_k_avx2<1>> : nullptr;
    case CpuLevel::avx512:
      return t == DType::q4_k ? one_row_avx512<dot_k4_avx512<1, false>> : t == DType::q5_k ? one_row_avx512<dot_k4_avx512<1, true>>
           : t == DType::q6_k ? one_row_avx512<dot_q6_k_avx512<1>> : nullptr;
#else
    default: return nullptr;
#endif
  }
  return nullptr;
}

DotQ8x4Fn dot_q8x4_kquant_kernel(DType t, CpuLevel level) {
  switch (level) {
#if defined(__x86_64__)
    case CpuLevel::avx2:
      return t == DType::q4_k ? dot_k4_avx2<4, false> : t == DType::q5_k ? dot_k4_avx2<4, true>
           : t == DType::q6_k ? dot_q6_k_avx2<4> : nullptr;
    case CpuLevel::avx512:
      return t == DType::q4_k ? dot_k4_avx512<4, false> : t == DType::q5_k ? dot_k4_avx512<4, true>
           : t == DType::q6_k ? dot_q6_k_avx512<4> : nullptr;
#endif
    default: return nullptr;
  }
}

}  // namespace herd
