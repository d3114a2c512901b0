// FP8 and INT4 weight rows (herd's blocks for quantized safetensors checkpoints, common/quant.h)
// against Q8Block activations, one 32-element weight block per activation block:
//   FP8:  f32 d, 32 E4M3 bytes;                    w = d * e4m3(q)
//   INT4: f16 d, u8 zero z, pad, 16 bytes nibbles; w = d * (q - z)  (nibbles as Q4_0's)
// INT4's zero point meets the activation sums once per block, as Q4_0's -8 does.
// The SIMD levels follow dot-legacy.cpp: INT4 is its Q4_0 with the zero point read from each block
// (maddubs on AVX2, VNNI four blocks to a register on AVX-512); FP8 converts the E4M3 codes to
// f32 through F16C and multiplies them with the activation quants in f32, exactly; both apply
// each block's scales once, as one FMA of the block's lanes.
#include <cstring>

#include "backend/cpu/cpu-kernels.h"
#include "backend/cpu/simd-x86.h"
#include "common/quant.h"

namespace herd {
namespace {

float dot_fp8_scalar(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const Fp8Block*>(w);
  float s = 0.f;
  for (int64_t blk = 0; blk < n / 32; ++blk, ++b, ++a) {
    float bsum = 0.f;
    for (int i = 0; i < 32; ++i) bsum += e4m3_to_f32(b->q[i]) * float(a->q[i]);
    s += b->d * a->d * bsum;
  }
  return s;
}

float dot_int4_scalar(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const Int4Block*>(w);
  float s = 0.f;
  for (int64_t blk = 0; blk < n / 32; ++blk, ++b, ++a) {
    int32_t isum = 0;
    for (int i = 0; i < 16; ++i) isum += int32_t(b->qs[i] & 0xF) * a->q[i] + int32_t(b->qs[i] >> 4) * a->q[i + 16];
    isum -= int32_t(b->z) * (int32_t(a->sum[0]) + a->sum[1]);
    s += f16_to_f32(b->d) * a->d * float(isum);
  }
  return s;
}

#if defined(__x86_64__)
using namespace x86;

constexpr int kFp8 = 36, kInt4 = 20;  // block bytes

// Every SIMD kernel below computes R rows (1 or 4) at w + r * row_bytes against the same
// activations, as dot-legacy.cpp's do: the activation side is loaded and converted once per block
// for all R rows, each row keeps its own accumulators (one row alternates two chains), and the
// single-row and four-row kernels are the same code, so they agree exactly.
template <int R>
constexpr int kChains = R == 1 ? 2 : 1;

// ---- FP8. An E4M3 code becomes its f16 times 2^-8 (cpu-kernels.h, kFp8F16Unit), so F16C converts
// it and the 2^8 goes into the block scale. From the code sign-extended to 16 bits, that f16 is
// (code << 7) with bit 14 (the sign's second copy) cleared. The products with the activation
// quants (as f32) are exact; per block they sum in f32 lanes, which then meet the block's scale
// d * a.d * 2^8 in one FMA.

HERD_AVX2 inline __m256i e4m3_to_f16_avx2(__m256i sext) {
  return _mm256_and_si256(_mm256_slli_epi16(sext, 7), _mm256_set1_epi16(short(0xBF80)));
}
HERD_AVX512 inline __m512i e4m3_to_f16_avx512(__m512i sext) {
  return _mm512_and_si512(_mm512_slli_epi16(sext, 7), _mm512_set1_epi16(short(0xBF80)));
}

// The activation quants of one block as f32, element order.
struct ActF32Avx2 {
  __m256 v[4];  // elements [8k, 8k + 8)
};
HERD_AVX2 inline ActF32Avx2 act_f32_avx2(const Q8Block* a) {
  ActF32Avx2 x;
  for (int k = 0; k < 4; ++k)
    x.v[k] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a->q + 8 * k))));
  return x;
}
struct ActF32Avx512 {
  __m512 v[2];  // elements [16k, 16k + 16)
};
HERD_AVX512 inline ActF32Avx512 act_f32_avx512(const Q8Block* a) {
  ActF32Avx512 x;
  for (int k = 0; k < 2; ++k)
    x.v[k] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a->q + 16 * k))));
  return x;
}

// One FP8 block's 32 products with the activations, summed to eight (AVX2) or 16 (AVX-512) lanes.
HERD_AVX2 inline __m256 fp8_block_avx2(const uint8_t* b, const ActF32Avx2& a) {
  __m256 p[2];
  for (int h = 0; h < 2; ++h) {
    const __m256i f16 = e4m3_to_f16_avx2(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 4 + 16 * h))));
    p[h] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm256_extracti128_si256(f16, 1)), a.v[2 * h + 1],
                           _mm256_mul_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(f16)), a.v[2 * h]));
  }
  return _mm256_add_ps(p[0], p[1]);
}
HERD_AVX512 inline __m512 fp8_block_avx512(const uint8_t* b, const ActF32Avx512& a) {
  const __m512i f16 = e4m3_to_f16_avx512(_mm512_cvtepi8_epi16(load32(b + 4)));
  return _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(f16, 1)), a.v[1],
                         _mm512_mul_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(f16)), a.v[0]));
}

// The scales d of eight FP8 blocks (f32 at each block's start).
HERD_AVX2 inline __m256 fp8_d8(const uint8_t* b) {
  return _mm256_i32gather_ps(reinterpret_cast<const float*>(b), strides8(kFp8), 1);
}

// ---- INT4: Q4_0's nibbles with a zero point z per block instead of 8, applied as Q4_0's -8 is:
// -z * d * a.d * (a.sum[0] + a.sum[1]) per block, the offset terms of eight blocks in one FMA.
// A block starts with the dword d | z << 16 | pad << 24.

// The zero points z of eight blocks from their head dwords, as f32.
HERD_AVX2 inline __m256 int4_z8(__m256i heads) {
  return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(heads, 16), _mm256_set1_epi32(0xFF)));
}

// ---- AVX2: one block per register.
template <int R, int kBytes>
HERD_AVX2 void dot_checkpoint_avx2(int64_t n, const void* w, size_t row_bytes, const Q8Block* a, float* out) {
  constexpr int C = kChains<R>;
  constexpr bool kFp = kBytes == kFp8;
  const int64_t nb = n / 32;
  const uint8_t* row[R];
  __m256 acc[R][C];
  float offs_tail[R];
  for (int r = 0; r < R; ++r) {
    row[r] = static_cast<const uint8_t*>(w) + size_t(r) * row_bytes;
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
    offs_tail[r] = 0.f;
  }
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8, a += 8) {
    const __m256 ad = kFp ? _mm256_mul_ps(act_d8(a), _mm256_set1_ps(kFp8F16Unit)) : act_d8(a);
    const __m256 neg_sum = kFp ? _mm256_setzero_ps() : _mm256_sub_ps(_mm256_setzero_ps(), act_sum8(a));
    alignas(32) float sc[R][8];
    for (int r = 0; r < R; ++r) {
      const uint8_t* b = row[r] + i * kBytes;
      if constexpr (kFp) {
        _mm256_store_ps(sc[r], _mm256_mul_ps(fp8_d8(b), ad));
      } else {
        const __m256i heads = block_heads8(b, kBytes);
        const __m256 s8 = _mm256_mul_ps(f16_lo_to_f32(heads), ad);
        _mm256_store_ps(sc[r], s8);
        acc[r][C - 1] = _mm256_fmadd_ps(s8, _mm256_mul_ps(int4_z8(heads), neg_sum), acc[r][C - 1]);
      }
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      if constexpr (kFp) {
        const ActF32Avx2 x = act_f32_avx2(a + j);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r)
          acc[r][j % C] = _mm256_fmadd_ps(fp8_block_avx2(row[r] + (i + j) * kBytes, x), _mm256_broadcast_ss(sc[r] + j), acc[r][j % C]);
      } else {
        const __m256i aq = load32(a[j].q);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r)
          acc[r][j % C] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8s8(q4_quants(row[r] + (i + j) * kBytes + 4), aq)),
                                          _mm256_broadcast_ss(sc[r] + j), acc[r][j % C]);
      }
    }
  }
  for (; i < nb; ++i, ++a) {
    for (int r = 0; r < R; ++r) {
      const uint8_t* b = row[r] + i * kBytes;
      if constexpr (kFp) {
        float d;
        std::memcpy(&d, b, 4);
        acc[r][0] = _mm256_fmadd_ps(fp8_block_avx2(b, act_f32_avx2(a)), _mm256_set1_ps(d * (a->d * kFp8F16Unit)), acc[r][0]);
      } else {
        const float s = f16(b) * a->d;
        acc[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8s8(q4_quants(b + 4), load32(a->q))), _mm256_set1_ps(s), acc[r][0]);
        offs_tail[r] -= s * (float(b[2]) * float(int32_t(a->sum[0]) + a->sum[1]));
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(C == 1 ? acc[r][0] : _mm256_add_ps(acc[r][0], acc[r][C - 1])) + offs_tail[r];
}

// ---- AVX-512. FP8: one block per two registers, as AVX2 does otherwise. INT4, per eight blocks
// (160 bytes, 40 dwords, so every block's head and its 16 bytes of quants are whole dwords: three
// loads and dword permutes): four blocks to a register, block k in 128-bit lane k, low nibbles
// and high nibbles against the matching halves of the activation blocks, both into one VNNI sum
// (four int32 lanes a block), each block's scale d * a.d permuted to its lanes; the offset terms
// of the eight blocks in one FMA. The last n/32 % 8 blocks go one at a time with 256-bit VNNI.




// Eight INT4 blocks against eight activation blocks (scales ad, sums sum): acc += the quants'
// products times their scales, offs += the scales times z * sum.
HERD_AVX512 inline __m512 int4_dot8(const uint8_t* b, const ActQuads& a, __m256 ad, __m256 sum, __m256* offs, __m512 acc) {
  const __m512i l0 = load64(b), l1 = load64(b + 64), l2 = _mm512_castsi256_si512(load32(b + 128));
  const __m512i q0 = _mm512_permutex2var_epi32(l0, _mm512_setr_epi32(1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 16, 17, 18, 19), l1);
  const __m512i q1 = _mm512_permutex2var_epi32(l1, _mm512_setr_epi32(5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18, 20, 21, 22, 23), l2);
  int32_t last;
  std::memcpy(&last, b + 140, 4);
  const __m256i heads = _mm256_mask_set1_epi32(
      _mm512_castsi512_si256(_mm512_permutex2var_epi32(l0, _mm512_setr_epi32(0, 5, 10, 15, 20, 25, 30, 0, 0, 0, 0, 0, 0, 0, 0, 0), l1)),
      0x80, last);
  const __m256 sc = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_cvtepi32_epi16(heads)), ad);
  *offs = _mm256_fmadd_ps(sc, _mm256_mul_ps(int4_z8(heads), sum), *offs);
  const __m512 sc16 = _mm512_castps256_ps512(sc);
  acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q4_quad_dot(q0, a.lo[0], a.hi[0])),
                        _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3), sc16), acc);
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(q4_quad_dot(q1, a.lo[1], a.hi[1])),
                         _mm512_permutexvar_ps(_mm512_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7), sc16), acc);
}

template <int R>
HERD_AVX512 void dot_fp8_avx512(int64_t n, const void* w, size_t row_bytes, const Q8Block* a, float* out) {
  constexpr int C = kChains<R>;
  const int64_t nb = n / 32;
  const uint8_t* row[R];
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r) {
    row[r] = static_cast<const uint8_t*>(w) + size_t(r) * row_bytes;
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8, a += 8) {
    const __m256 ad = _mm256_mul_ps(act_d8(a), _mm256_set1_ps(kFp8F16Unit));
    alignas(32) float sc[R][8];
    for (int r = 0; r < R; ++r) _mm256_store_ps(sc[r], _mm256_mul_ps(fp8_d8(row[r] + i * kFp8), ad));
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const ActF32Avx512 x = act_f32_avx512(a + j);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
        acc[r][j % C] = _mm512_fmadd_ps(fp8_block_avx512(row[r] + (i + j) * kFp8, x), _mm512_set1_ps(sc[r][j]), acc[r][j % C]);
    }
  }
  for (; i < nb; ++i, ++a) {
    const ActF32Avx512 x = act_f32_avx512(a);
    for (int r = 0; r < R; ++r) {
      const uint8_t* b = row[r] + i * kFp8;
      float d;
      std::memcpy(&d, b, 4);
      acc[r][0] = _mm512_fmadd_ps(fp8_block_avx512(b, x), _mm512_set1_ps(d * (a->d * kFp8F16Unit)), acc[r][0]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(fold(C == 1 ? acc[r][0] : _mm512_add_ps(acc[r][0], acc[r][C - 1])));
}

template <int R>
HERD_AVX512 void dot_int4_avx512(int64_t n, const void* w, size_t row_bytes, const Q8Block* a, float* out) {
  constexpr int C = kChains<R>;
  const int64_t nb = n / 32;
  const uint8_t* row[R];
  __m512 acc[R][C];
  __m256 offs[R];
  float offs_tail[R];
  for (int r = 0; r < R; ++r) {
    row[r] = static_cast<const uint8_t*>(w) + size_t(r) * row_bytes;
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
    offs[r] = _mm256_setzero_ps();
    offs_tail[r] = 0.f;
  }
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8, a += 8) {
    const __m256 ad = act_d8(a), sum = act_sum8(a);
    const ActQuads q = act_quads(a);
    for (int r = 0; r < R; ++r) {
      __m512& c = acc[r][i / 8 % C];
      c = int4_dot8(row[r] + i * kInt4, q, ad, sum, &offs[r], c);
    }
  }
  __m256 tail[R];
  for (int r = 0; r < R; ++r) tail[r] = fold(C == 1 ? acc[r][0] : _mm512_add_ps(acc[r][0], acc[r][C - 1]));
  for (; i < nb; ++i, ++a) {
    const __m256i aq = load32(a->q);
    const float sum = float(int32_t(a->sum[0]) + a->sum[1]);
    for (int r = 0; r < R; ++r) {
      const uint8_t* b = row[r] + i * kInt4;
      const float s = f16(b) * a->d;
      tail[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8s8_vnni(q4_quants(b + 4), aq)), _mm256_set1_ps(s), tail[r]);
      offs_tail[r] += s * (float(b[2]) * sum);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(tail[r]) - (hsum(offs[r]) + offs_tail[r]);
}


template <int R> constexpr DotQ8x4Fn fp8_avx2 = dot_checkpoint_avx2<R, kFp8>;
template <int R> constexpr DotQ8x4Fn int4_avx2 = dot_checkpoint_avx2<R, kInt4>;
template <int R> constexpr DotQ8x4Fn fp8_avx512 = dot_fp8_avx512<R>;
template <int R> constexpr DotQ8x4Fn int4_avx512 = dot_int4_avx512<R>;
#endif

}  // namespace

DotQ8Fn dot_q8_checkpoint_kernel(DType t, CpuLevel level) {
  switch (level) {
    case CpuLevel::scalar: return t == DType::fp8 ? dot_fp8_scalar : t == DType::int4 ? dot_int4_scalar : nullptr;
#if defined(__x86_64__)
    case CpuLevel::avx2:
      return t == DType::fp8 ? one_row_avx2<fp8_avx2<1>> : t == DType::int4 ? one_row_avx2<int4_avx2<1>> : nullptr;
    case CpuLevel::avx512:
      return t == DType::fp8 ? one_row_avx512<fp8_avx512<1>> : t == DType::int4 ? one_row_avx512<int4_avx512<1>> : nullptr;
#else
    default: return nullptr;
#endif
  }
  return nullptr;
}

DotQ8x4Fn dot_q8x4_checkpoint_kernel(DType t, CpuLevel level) {
  switch (level) {
#if defined(__x86_64__)
    case CpuLevel::avx2: return t == DType::fp8 ? fp8_avx2<4> : t == DType::int4 ? int4_avx2<4> : nullptr;
    case CpuLevel::avx512: return t == DType::fp8 ? fp8_avx512<4> : t == DType::int4 ? int4_avx512<4> : nullptr;
#endif
    default: return nullptr;
  }
}

}  // namespace herd
