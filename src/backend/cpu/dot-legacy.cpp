// Q8_0, Q4_0 and Q4_1 weight rows against Q8Block activations. One weight block (32 elements)
// meets one activation block: the integer dot product of the quants, times both scales.
//   Q8_0: f16 d, 32 int8 q;             w = d * q
//   Q4_0: f16 d, 16 bytes of nibbles;   w = d * (q - 8)   (element i: low nibble of byte i,
//                                                          element i + 16: its high nibble)
//   Q4_1: f16 d, f16 m, 16 bytes;       w = d * q + m
// The SIMD levels take the weight and activation scales of eight blocks at a time (gathers), so
// the per-block work is the integer dot product and one FMA of its int32 lanes into f32
// accumulators; Q4_0's -8 and Q4_1's m meet the activation sums once per eight blocks. AVX2
// multiplies bytes with maddubs (Q8_0's signed weights through abs/sign) and widens with madd;
// AVX-512 puts two blocks in each register and uses VNNI (dpbusd).
#include <cstring>

#include "backend/cpu/cpu-kernels.h"
#include "backend/cpu/simd-x86.h"

namespace herd {
namespace {

float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

float dot_q8_0_scalar(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  float s = 0.f;
  for (int64_t blk = 0; blk < n / 32; ++blk, b += 34, ++a) {
    const auto* q = reinterpret_cast<const int8_t*>(b + 2);
    int32_t isum = 0;
    for (int i = 0; i < 32; ++i) isum += int32_t(q[i]) * a->q[i];
    s += f16_at(b) * a->d * float(isum);
  }
  return s;
}

float dot_q4_0_scalar(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  float s = 0.f;
  for (int64_t blk = 0; blk < n / 32; ++blk, b += 18, ++a) {
    const uint8_t* q = b + 2;
    int32_t isum = 0;
    for (int i = 0; i < 16; ++i) isum += int32_t(q[i] & 0xF) * a->q[i] + int32_t(q[i] >> 4) * a->q[i + 16];
    isum -= 8 * (int32_t(a->sum[0]) + a->sum[1]);
    s += f16_at(b) * a->d * float(isum);
  }
  return s;
}

float dot_q4_1_scalar(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  float s = 0.f;
  for (int64_t blk = 0; blk < n / 32; ++blk, b += 20, ++a) {
    const uint8_t* q = b + 4;
    int32_t isum = 0;
    for (int i = 0; i < 16; ++i) isum += int32_t(q[i] & 0xF) * a->q[i] + int32_t(q[i] >> 4) * a->q[i + 16];
    s += f16_at(b) * a->d * float(isum) + f16_at(b + 2) * a->d * float(int32_t(a->sum[0]) + a->sum[1]);
  }
  return s;
}

#if defined(__x86_64__)
using namespace x86;

constexpr int kQ8_0 = 34, kQ4_0 = 18, kQ4_1 = 20;  // block bytes

// Every SIMD kernel below computes R rows (1 or 4) at w + r * row_bytes against the same
// activations: the activation side (quants, scales d, sums) is loaded and converted once per
// block for all R rows, and each row keeps its own accumulators, so four rows are four
// independent FMA chains whose weight loads interleave. One row alternates two chains instead.
// The single-row and four-row kernels are the same code, so they agree exactly.
template <int R>
constexpr int kChains = R == 1 ? 2 : 1;

// ---- AVX2: one block per register.

// The int32 lanes of one weight block's integer dot product with activation quants aq.
HERD_AVX2 inline __m256i q8_0_block_avx2(const uint8_t* b, __m256i aq) {
  const __m256i w = load32(b + 2);
  return dot_u8s8(_mm256_abs_epi8(w), _mm256_sign_epi8(aq, w));
}
HERD_AVX2 inline __m256i q4_0_block_avx2(const uint8_t* b, __m256i aq) { return dot_u8s8(q4_quants(b + 2), aq); }
HERD_AVX2 inline __m256i q4_1_block_avx2(const uint8_t* b, __m256i aq) { return dot_u8s8(q4_quants(b + 4), aq); }

// The three legacy types differ in block size, in where the quants lie and how they meet the
// activations (Block), and in the offset term: none (Q8_0), -8 * d * a.d * sum (Q4_0) or
// m * a.d * sum (Q4_1). Per eight blocks the weight scales come in one gather per row, and the
// offset term of the eight blocks goes into the row's accumulator as one FMA (only the lanes'
// total matters), which leaves AVX2's 16 registers enough for four rows.
template <int R, int kBytes, __m256i (*Block)(const uint8_t*, __m256i)>
HERD_AVX2 void dot_legacy_avx2(int64_t n, const void* w, size_t row_bytes, const Q8Block* a, float* out) {
  constexpr int C = kChains<R>;
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
    const __m256 ad = act_d8(a);
    const __m256 sum = kBytes == kQ8_0 ? _mm256_setzero_ps() : _mm256_mul_ps(act_sum8(a), _mm256_set1_ps(kBytes == kQ4_0 ? -8.f : 1.f));
    alignas(32) float sc[R][8];
    for (int r = 0; r < R; ++r) {
      const uint8_t* b = row[r] + i * kBytes;
      const __m256i heads = block_heads8(b, kBytes);
      const __m256 s8 = _mm256_mul_ps(f16_lo_to_f32(heads), ad);
      _mm256_store_ps(sc[r], s8);
      if (kBytes == kQ4_0) acc[r][C - 1] = _mm256_fmadd_ps(s8, sum, acc[r][C - 1]);
      if (kBytes == kQ4_1) acc[r][C - 1] = _mm256_fmadd_ps(_mm256_mul_ps(f16_lo_to_f32(_mm256_srli_epi32(heads, 16)), ad), sum, acc[r][C - 1]);
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const __m256i aq = load32(a[j].q);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
        acc[r][j % C] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(Block(row[r] + (i + j) * kBytes, aq)), _mm256_broadcast_ss(sc[r] + j),
                                        acc[r][j % C]);
    }
  }
  for (; i < nb; ++i, ++a) {
    const __m256i aq = load32(a->q);
    const float sum = float(int32_t(a->sum[0]) + a->sum[1]);
    for (int r = 0; r < R; ++r) {
      const uint8_t* b = row[r] + i * kBytes;
      const float s = f16(b) * a->d;
      acc[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(Block(b, aq)), _mm256_set1_ps(s), acc[r][0]);
      if (kBytes == kQ4_0) offs_tail[r] -= 8.f * s * sum;
      if (kBytes == kQ4_1) offs_tail[r] += f16(b + 2) * a->d * sum;
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(C == 1 ? acc[r][0] : _mm256_add_ps(acc[r][0], acc[r][C - 1])) + offs_tail[r];
}

// ---- AVX-512, per eight blocks: the weight scales of a row as 16 f32 lanes [d0, m0, d1, m1, ...]
// (one conversion of eight f16 pairs; Q8_0 and Q4_0 have quants where Q4_1 has m, so their odd
// lanes are masked off), times the activation scales duplicated likewise; the offset term is one
// FMA of those lanes with the activation sums placed in the d lanes (Q8_0, Q4_0) or m lanes (Q4_1).
// Q4 blocks go four to a register, block k in 128-bit lane k, low nibbles and high nibbles against
// the matching halves of the activation blocks, both into one VNNI sum (four int32 lanes a
// block); Q8_0 goes two blocks to a register. The last n/32 % 8 blocks go one at a time with
// 256-bit VNNI.


// 16 f32 lanes whose lane 2i + 1 (odd) or 2i (even) is v[i] (8 lanes), the others zero; or both.
HERD_AVX512 inline __m512 dup_lanes(__m256 v, __mmask16 lanes) {
  const __m512i idx = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
  return _mm512_maskz_permutexvar_ps(lanes, idx, _mm512_castps256_ps512(v));
}

// The activation side of eight blocks, shared by every row: duplicated scales and placed sums.
struct ActScales8 {
  __m512 d, sum;
};
template <__mmask16 kSumLanes>
HERD_AVX512 inline ActScales8 act_scales8(const Q8Block* a) {
  return {dup_lanes(act_d8(a), 0xFFFF), dup_lanes(act_sum8(a), kSumLanes)};
}

// Activation quants of eight blocks for Q8_0: pair[j] = blocks 2j, 2j + 1.
struct ActPairs {
  __m512i pair[4];
};
HERD_AVX512 inline ActPairs act_pairs(const Q8Block* a) {
  ActPairs p;
  for (int j = 0; j < 4; ++j) p.pair[j] = act_q_pair(a + 2 * j);
  return p;
}


// acc += the int32 lanes of blocks whose scales sit at even lanes `first`, first + 2, ... of sc,
// each repeated over `width` lanes (4 for quads, 8 for pairs).
template <int kWidth>
HERD_AVX512 inline __m512 scale_acc(__m512i p, __m512 sc, int first, __m512 acc) {
  alignas(64) int32_t idx[16];
  for (int l = 0; l < 16; ++l) idx[l] = first + 2 * (l / kWidth);
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_permutexvar_ps(_mm512_load_si512(idx), sc), acc);
}

struct Q4_1Avx512 {
  static constexpr int kBytes = kQ4_1;
  static constexpr __mmask16 kSumLanes = 0xAAAA;
  static constexpr float kOffset = 1.f;
  using Act = ActQuads;
  static Act act(const Q8Block* a) HERD_AVX512 { return act_quads(a); }
  // Eight blocks are 160 bytes, 40 dwords, so every block's d|m and its 16 bytes of quants are
  // whole dwords: three loads and dword permutes, instead of gathers and 128-bit inserts.
  static __m512 dot8(const uint8_t* b, const Act& a, __m512 ad, __m512 sum, __m512* offs, __m512 acc) HERD_AVX512 {
    const __m512i l0 = load64(b), l1 = load64(b + 64), l2 = _mm512_castsi256_si512(load32(b + 128));
    const __m512i q0 = _mm512_permutex2var_epi32(l0, _mm512_setr_epi32(1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 16, 17, 18, 19), l1);
    const __m512i q1 = _mm512_permutex2var_epi32(l1, _mm512_setr_epi32(5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18, 20, 21, 22, 23), l2);
    int32_t last;
    std::memcpy(&last, b + 140, 4);
    const __m512i heads = _mm512_mask_set1_epi32(
        _mm512_permutex2var_epi32(l0, _mm512_setr_epi32(0, 5, 10, 15, 20, 25, 30, 0, 0, 0, 0, 0, 0, 0, 0, 0), l1), 0x80, last);
    const __m512 sc = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(heads)), ad);
    *offs = _mm512_fmadd_ps(sc, sum, *offs);
    acc = scale_acc<4>(q4_quad_dot(q0, a.lo[0], a.hi[0]), sc, 0, acc);
    return scale_acc<4>(q4_quad_dot(q1, a.lo[1], a.hi[1]), sc, 8, acc);
  }
  static __m256i block(const uint8_t* b, __m256i aq) HERD_AVX512 { return dot_u8s8_vnni(q4_quants(b + 4), aq); }
};

struct Q4_0Avx512 {
  static constexpr int kBytes = kQ4_0;
  static constexpr __mmask16 kSumLanes = 0x5555, kScaleLanes = 0x5555;
  static constexpr float kOffset = -8.f;
  using Act = ActQuads;
  static Act act(const Q8Block* a) HERD_AVX512 { return act_quads(a); }
  static __m512 dot8(const uint8_t* b, const Act& a, __m512 ad, __m512 sum, __m512* offs, __m512 acc) HERD_AVX512 {
    const __m512 sc = _mm512_maskz_mul_ps(kScaleLanes, _mm512_cvtph_ps(block_heads8(b, kBytes)), ad);
    *offs = _mm512_fmadd_ps(sc, sum, *offs);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* q = b + 4 * h * kBytes + 2;
      acc = scale_acc<4>(q4_quad_dot(load16x4(q, q + kBytes, q + 2 * kBytes, q + 3 * kBytes), a.lo[h], a.hi[h]), sc, 8 * h, acc);
    }
    return acc;
  }
  static __m256i block(const uint8_t* b, __m256i aq) HERD_AVX512 { return dot_u8s8_vnni(q4_quants(b + 2), aq); }
};

// Q8_0's weights + 128 as unsigned bytes: the pair products carry 128 times the activation sums,
// which the offset term takes back. The tail blocks use signed products and no offset.
struct Q8_0Avx512 {
  static constexpr int kBytes = kQ8_0;
  static constexpr __mmask16 kSumLanes = 0x5555, kScaleLanes = 0x5555;
  static constexpr float kOffset = -128.f;
  using Act = ActPairs;
  static Act act(const Q8Block* a) HERD_AVX512 { return act_pairs(a); }
  static __m512 dot8(const uint8_t* b, const Act& a, __m512 ad, __m512 sum, __m512* offs, __m512 acc) HERD_AVX512 {
    const __m512 sc = _mm512_maskz_mul_ps(kScaleLanes, _mm512_cvtph_ps(block_heads8(b, kBytes)), ad);
    *offs = _mm512_fmadd_ps(sc, sum, *offs);
    for (int j = 0; j < 4; ++j) {
      const uint8_t* q = b + 2 * j * kBytes + 2;
      const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(load32(q)), load32(q + kBytes), 1);
      const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(w, _mm512_set1_epi8(char(0x80))), a.pair[j]);
      acc = scale_acc<8>(p, sc, 4 * j, acc);
    }
    return acc;
  }
  static __m256i block(const uint8_t* b, __m256i aq) HERD_AVX512 {
    const __m256i w = load32(b + 2);
    return dot_u8s8_vnni(_mm256_abs_epi8(w), _mm256_sign_epi8(aq, w));
  }
};

template <int R, class T>
HERD_AVX512 void dot_legacy_avx512(int64_t n, const void* w, size_t row_bytes, const Q8Block* a, float* out) {
  constexpr int C = kChains<R>, kBytes = T::kBytes;
  const int64_t nb = n / 32;
  const uint8_t* row[R];
  __m512 acc[R][C], offs[R];
  float offs_tail[R];
  for (int r = 0; r < R; ++r) {
    row[r] = static_cast<const uint8_t*>(w) + size_t(r) * row_bytes;
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
    offs[r] = _mm512_setzero_ps();
    offs_tail[r] = 0.f;
  }
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8, a += 8) {
    const ActScales8 s = act_scales8<T::kSumLanes>(a);
    const typename T::Act q = T::act(a);
    for (int r = 0; r < R; ++r) {
      __m512& c = acc[r][i / 8 % C];
      c = T::dot8(row[r] + i * kBytes, q, s.d, s.sum, &offs[r], c);
    }
  }
  __m256 tail[R];
  for (int r = 0; r < R; ++r) tail[r] = fold(C == 1 ? acc[r][0] : _mm512_add_ps(acc[r][0], acc[r][C - 1]));
  for (; i < nb; ++i, ++a) {
    const __m256i aq = load32(a->q);
    const float sum = float(int32_t(a->sum[0]) + a->sum[1]);
    for (int r = 0; r < R; ++r) {
      const uint8_t* b = row[r] + i * kBytes;
      const float s = f16(b) * a->d;
      tail[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(T::block(b, aq)), _mm256_set1_ps(s), tail[r]);
      if (kBytes == kQ4_0) offs_tail[r] += s * sum;
      if (kBytes == kQ4_1) offs_tail[r] += f16(b + 2) * a->d * sum;
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(tail[r]) + T::kOffset * (hsum(fold(offs[r])) + offs_tail[r]);
}


template <int R> constexpr DotQ8x4Fn q8_0_avx2 = dot_legacy_avx2<R, kQ8_0, q8_0_block_avx2>;
template <int R> constexpr DotQ8x4Fn q4_0_avx2 = dot_legacy_avx2<R, kQ4_0, q4_0_block_avx2>;
template <int R> constexpr DotQ8x4Fn q4_1_avx2 = dot_legacy_avx2<R, kQ4_1, q4_1_block_avx2>;
template <int R> constexpr DotQ8x4Fn q8_0_avx512 = dot_legacy_avx512<R, Q8_0Avx512>;
template <int R> constexpr DotQ8x4Fn q4_0_avx512 = dot_legacy_avx512<R, Q4_0Avx512>;
template <int R> constexpr DotQ8x4Fn q4_1_avx512 = dot_legacy_avx512<R, Q4_1Avx512>;
#endif

}  // namespace

DotQ8Fn dot_q8_legacy_kernel(DType t, CpuLevel level) {
  switch (level) {
    case CpuLevel::scalar:
      return t == DType::q8_0 ? dot_q8_0_scalar : t == DType::q4_0 ? dot_q4_0_scalar
           : t == DType::q4_1 ? dot_q4_1_scalar : nullptr;
#if defined(__x86_64__)
    case CpuLevel::avx2:
      return t == DType::q8_0 ? one_row_avx2<q8_0_avx2<1>> : t == DType::q4_0 ? one_row_avx2<q4_0_avx2<1>>
           : t == DType::q4_1 ? one_row_avx2<q4_1_avx2<1>> : nullptr;
    case CpuLevel::avx512:
      return t == DType::q8_0 ? one_row_avx512<q8_0_avx512<1>> : t == DType::q4_0 ? one_row_avx512<q4_0_avx512<1>>
           : t == DType::q4_1 ? one_row_avx512<q4_1_avx512<1>> : nullptr;
#else
    default: return nullptr;
#endif
  }
  return nullptr;
}

DotQ8x4Fn dot_q8x4_legacy_kernel(DType t, CpuLevel level) {
  switch (level) {
#if defined(__x86_64__)
    case CpuLevel::avx2:
      return t == DType::q8_0 ? q8_0_avx2<4> : t == DType::q4_0 ? q4_0_avx2<4> : t == DType::q4_1 ? q4_1_avx2<4> : nullptr;
    case CpuLevel::avx512:
      return t == DType::q8_0 ? q8_0_avx512<4> : t == DType::q4_0 ? q4_0_avx512<4> : t == DType::q4_1 ? q4_1_avx512<4> : nullptr;
#endif
    default: return nullptr;
  }
}

}  // namespace herd
