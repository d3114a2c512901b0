// x86 building blocks shared by the CPU kernels (dot-legacy.cpp, dot-kquant.cpp, dot-float.cpp,
// quantize-act.cpp).
// Every function carries its level's target attributes, so the files that include this header
// still build for any x86-64 and run each level only where cpu-level.cpp found it.
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>
// GCC 12 warns about the deliberately undefined vectors inside its own AVX-512 intrinsics
// (_mm512_castsi256_si512, the _mm512_reduce_* family); the warning is about the header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include "backend/cpu/cpu-kernels.h"

// AVX-512 implies AVX2/FMA/F16C on every processor that has it; naming them lets the AVX-512
// kernels inline the AVX2 helpers.
#define HERD_AVX2 __attribute__((target("avx2,fma,f16c")))
#define HERD_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

namespace herd::x86 {

HERD_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

HERD_AVX2 inline float f16(const uint8_t* p) {
  uint16_t h;
  __builtin_memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

HERD_AVX2 inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Byte offsets of eight consecutive records `stride` bytes apart.
HERD_AVX2 inline __m256i strides8(int stride) {
  return _mm256_mullo_epi32(_mm256_set1_epi32(stride), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The scales d of activation blocks a[0, 8).
HERD_AVX2 inline __m256 act_d8(const Q8Block* a) {
  return _mm256_i32gather_ps(&a->d, strides8(sizeof(Q8Block)), 1);
}

// The halves sum[0], sum[1] of activation blocks a[0, 8) as int16 pairs (one int32 lane each).
HERD_AVX2 inline __m256i act_sum_pairs8(const Q8Block* a) {
  return _mm256_i32gather_epi32(reinterpret_cast<const int*>(a->sum), strides8(sizeof(Q8Block)), 1);
}

// sum[0] + sum[1] of activation blocks a[0, 8), as float (exact: |sum| <= 32 * 127).
HERD_AVX2 inline __m256 act_sum8(const Q8Block* a) {
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(act_sum_pairs8(a), _mm256_set1_epi16(1)));
}

// f16 values in the low 16 bits of each int32 lane, as f32.
HERD_AVX2 inline __m256 f16_lo_to_f32(__m256i v) {
  const __m256i p = _mm256_packus_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0xFFFF)), _mm256_setzero_si256());
  return _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(p, 0b1000)));
}

// The 32-bit words at the starts of eight weight blocks `stride` bytes apart (their f16 scales).
HERD_AVX2 inline __m256i block_heads8(const uint8_t* b, int stride) {
  return _mm256_i32gather_epi32(reinterpret_cast<const int*>(b), strides8(stride), 1);
}

// 32 unsigned bytes times 32 signed bytes, summed in fours into eight int32 (no int16 overflow
// for |u| <= 128 and |s| <= 127).
HERD_AVX2 inline __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
HERD_AVX512 inline __m256i dot_u8s8_vnni(__m256i u, __m256i s) {
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
}

// Two consecutive activation blocks' quants in one register: a[0] low, a[1] high.
HERD_AVX512 inline __m512i act_q_pair(const Q8Block* a) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(load32(a[0].q)), load32(a[1].q), 1);
}

HERD_AVX512 inline __m256 fold(__m512 v) {
  return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

// Lanes [0, 8) = v[i], lanes [8, 16) = v[i + 1].
HERD_AVX512 inline __m512 pair_lanes(__m256 v, int i) {
  const __m512i idx = _mm512_set_epi32(i + 1, i + 1, i + 1, i + 1, i + 1, i + 1, i + 1, i + 1, i, i, i, i, i, i, i, i);
  return _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(v));
}

// 16 bytes of nibbles (GGML's Q4_0/Q4_1 layout, INT4's) as 32 unsigned quants in element order.
HERD_AVX2 inline __m256i q4_quants(const uint8_t* q) {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

HERD_AVX512 inline __m512i load64(const void* p) { return _mm512_loadu_si512(p); }
HERD_AVX512 inline __m512i load16x4(const void* p0, const void* p1, const void* p2, const void* p3) {
  auto l = [](const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); };
  const __m512i x = _mm512_inserti32x4(_mm512_castsi128_si512(l(p0)), l(p1), 1);
  return _mm512_inserti32x4(_mm512_inserti32x4(x, l(p2), 2), l(p3), 3);
}

// Activation quants of eight blocks for 4-bit weights: lo[h] lane k = a[4h + k].q[0, 16),
// hi[h] = q[16, 32).
struct ActQuads {
  __m512i lo[2], hi[2];
};
HERD_AVX512 inline ActQuads act_quads(const Q8Block* a) {
  ActQuads q;
  for (int h = 0; h < 2; ++h)
    for (int half = 0; half < 2; ++half)
      (half ? q.hi : q.lo)[h] = load16x4(a[4 * h].q + 16 * half, a[4 * h + 1].q + 16 * half, a[4 * h + 2].q + 16 * half,
                                         a[4 * h + 3].q + 16 * half);
  return q;
}

// Four 4-bit blocks' nibbles (16 bytes each, block k in lane k) against activation quads: the
// int32 sums, four lanes a block.
HERD_AVX512 inline __m512i q4_quad_dot(__m512i nibbles, __m512i alo, __m512i ahi) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m512i lo = _mm512_and_si512(nibbles, low4), hi = _mm512_and_si512(_mm512_srli_epi16(nibbles, 4), low4);
  return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, alo), hi, ahi);
}

// A four-row kernel F run on one row: the single-row kernel is the same code, so the two agree.
template <DotQ8x4Fn F>
HERD_AVX2 float one_row_avx2(int64_t n, const void* w, const Q8Block* a) {
  float out;
  F(n, w, 0, a, &out);
  return out;
}
template <DotQ8x4Fn F>
HERD_AVX512 float one_row_avx512(int64_t n, const void* w, const Q8Block* a) {
  float out;
  F(n, w, 0, a, &out);
  return out;
}

}  // namespace herd::x86

#endif
