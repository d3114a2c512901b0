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

}  // namespace herd::x86

#endif
