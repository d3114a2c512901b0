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

// ---- AVX2: one block per register.

// A Q4_0/Q4_1 block's 16 bytes of nibbles as 32 unsigned quants in element order.
HERD_AVX2 inline __m256i q4_quants(const uint8_t* q) {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

HERD_AVX2 inline __m256i q8_0_block_avx2(const uint8_t* b, const Q8Block* a) {
  const __m256i w = load32(b + 2);
  return dot_u8s8(_mm256_abs_epi8(w), _mm256_sign_epi8(load32(a->q), w));
}

HERD_AVX2 inline __m256i q4_block_avx2(const uint8_t* q, const Q8Block* a) { return dot_u8s8(q4_quants(q), load32(a->q)); }

HERD_AVX2 float dot_q8_0_avx2(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  const int64_t nb = n / 32;
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8, b += 8 * kQ8_0, a += 8) {
    alignas(32) float sc[8];
    _mm256_store_ps(sc, _mm256_mul_ps(f16_lo_to_f32(block_heads8(b, kQ8_0)), act_d8(a)));
    for (int j = 0; j < 8; ++j)
      acc[j & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q8_0_block_avx2(b + j * kQ8_0, a + j)), _mm256_broadcast_ss(sc + j), acc[j & 1]);
  }
  for (; i < nb; ++i, b += kQ8_0, ++a)
    acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q8_0_block_avx2(b, a)), _mm256_set1_ps(f16(b) * a->d), acc[0]);
  return hsum(_mm256_add_ps(acc[0], acc[1]));
}

HERD_AVX2 float dot_q4_0_avx2(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  const int64_t nb = n / 32;
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, offs = _mm256_setzero_ps();
  float offs_tail = 0.f;
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8, b += 8 * kQ4_0, a += 8) {
    alignas(32) float sc[8];
    const __m256 s8 = _mm256_mul_ps(f16_lo_to_f32(block_heads8(b, kQ4_0)), act_d8(a));
    _mm256_store_ps(sc, s8);
    offs = _mm256_fmadd_ps(s8, act_sum8(a), offs);
    for (int j = 0; j < 8; ++j)
      acc[j & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q4_block_avx2(b + j * kQ4_0 + 2, a + j)), _mm256_broadcast_ss(sc + j), acc[j & 1]);
  }
  for (; i < nb; ++i, b += kQ4_0, ++a) {
    const float s = f16(b) * a->d;
    acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q4_block_avx2(b + 2, a)), _mm256_set1_ps(s), acc[0]);
    offs_tail += s * float(int32_t(a->sum[0]) + a->sum[1]);
  }
  return hsum(_mm256_add_ps(acc[0], acc[1])) - 8.f * (hsum(offs) + offs_tail);
}

HERD_AVX2 float dot_q4_1_avx2(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  const int64_t nb = n / 32;
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, mins = _mm256_setzero_ps();
  float mins_tail = 0.f;
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8, b += 8 * kQ4_1, a += 8) {
    alignas(32) float sc[8];
    const __m256i dm = block_heads8(b, kQ4_1);
    const __m256 ad = act_d8(a);
    _mm256_store_ps(sc, _mm256_mul_ps(f16_lo_to_f32(dm), ad));
    mins = _mm256_fmadd_ps(_mm256_mul_ps(f16_lo_to_f32(_mm256_srli_epi32(dm, 16)), ad), act_sum8(a), mins);
    for (int j = 0; j < 8; ++j)
      acc[j & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q4_block_avx2(b + j * kQ4_1 + 4, a + j)), _mm256_broadcast_ss(sc + j), acc[j & 1]);
  }
  for (; i < nb; ++i, b += kQ4_1, ++a) {
    acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q4_block_avx2(b + 4, a)), _mm256_set1_ps(f16(b) * a->d), acc[0]);
    mins_tail += f16(b + 2) * a->d * float(int32_t(a->sum[0]) + a->sum[1]);
  }
  return hsum(_mm256_add_ps(acc[0], acc[1])) + hsum(mins) + mins_tail;
}

// ---- AVX-512: two blocks per register (lanes [0, 8) the first); the last n/32 % 8 blocks one
// at a time with 256-bit VNNI.

// Q8_0 weights + 128 (unsigned bytes) times the activations: the dot product plus 128 times
// the activation sum, which the caller subtracts through the blocks' sums.
HERD_AVX512 inline __m512i q8_0_pair(const uint8_t* b, const Q8Block* a) {
  const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(load32(b + 2)), load32(b + kQ8_0 + 2), 1);
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(w, _mm512_set1_epi8(char(0x80))), act_q_pair(a));
}

// Two Q4 blocks' nibbles (q0, q1: their 16 bytes) as 64 unsigned quants in element order.
HERD_AVX512 inline __m512i q4_quants_pair(const uint8_t* q0, const uint8_t* q1) {
  const __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q0))),
                                            _mm_loadu_si128(reinterpret_cast<const __m128i*>(q1)), 1);
  const __m512i x = _mm512_shuffle_i64x2(_mm512_castsi256_si512(t), _mm512_castsi256_si512(t), 0x50);  // q0 q0 q1 q1
  return _mm512_and_si512(_mm512_mask_srli_epi16(x, 0xFF00FF00, x, 4), _mm512_set1_epi8(0x0F));
}

HERD_AVX512 inline __m512i q4_pair(const uint8_t* q0, const uint8_t* q1, const Q8Block* a) {
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), q4_quants_pair(q0, q1), act_q_pair(a));
}

HERD_AVX512 inline __m256i q8_0_block_vnni(const uint8_t* b, const Q8Block* a) {
  const __m256i w = load32(b + 2);
  return dot_u8s8_vnni(_mm256_abs_epi8(w), _mm256_sign_epi8(load32(a->q), w));
}

HERD_AVX512 float dot_q8_0_avx512(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  const int64_t nb = n / 32;
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  __m256 offs = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8, b += 8 * kQ8_0, a += 8) {
    const __m256 s8 = _mm256_mul_ps(f16_lo_to_f32(block_heads8(b, kQ8_0)), act_d8(a));
    offs = _mm256_fmadd_ps(s8, act_sum8(a), offs);
    for (int j = 0; j < 8; j += 2)
      acc[j / 2 & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q8_0_pair(b + j * kQ8_0, a + j)), pair_lanes(s8, j), acc[j / 2 & 1]);
  }
  __m256 tail = fold(_mm512_add_ps(acc[0], acc[1]));
  for (; i < nb; ++i, b += kQ8_0, ++a)
    tail = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q8_0_block_vnni(b, a)), _mm256_set1_ps(f16(b) * a->d), tail);
  return hsum(tail) - 128.f * hsum(offs);
}

HERD_AVX512 float dot_q4_0_avx512(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  const int64_t nb = n / 32;
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  __m256 offs = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8, b += 8 * kQ4_0, a += 8) {
    const __m256 s8 = _mm256_mul_ps(f16_lo_to_f32(block_heads8(b, kQ4_0)), act_d8(a));
    offs = _mm256_fmadd_ps(s8, act_sum8(a), offs);
    for (int j = 0; j < 8; j += 2) {
      const uint8_t* q = b + j * kQ4_0 + 2;
      acc[j / 2 & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q4_pair(q, q + kQ4_0, a + j)), pair_lanes(s8, j), acc[j / 2 & 1]);
    }
  }
  __m256 tail = fold(_mm512_add_ps(acc[0], acc[1]));
  float offs_tail = 0.f;
  for (; i < nb; ++i, b += kQ4_0, ++a) {
    const float s = f16(b) * a->d;
    tail = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8s8_vnni(q4_quants(b + 2), load32(a->q))), _mm256_set1_ps(s), tail);
    offs_tail += s * float(int32_t(a->sum[0]) + a->sum[1]);
  }
  return hsum(tail) - 8.f * (hsum(offs) + offs_tail);
}

HERD_AVX512 float dot_q4_1_avx512(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  const int64_t nb = n / 32;
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  __m256 mins = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8, b += 8 * kQ4_1, a += 8) {
    const __m256i dm = block_heads8(b, kQ4_1);
    const __m256 ad = act_d8(a), s8 = _mm256_mul_ps(f16_lo_to_f32(dm), ad);
    mins = _mm256_fmadd_ps(_mm256_mul_ps(f16_lo_to_f32(_mm256_srli_epi32(dm, 16)), ad), act_sum8(a), mins);
    for (int j = 0; j < 8; j += 2) {
      const uint8_t* q = b + j * kQ4_1 + 4;
      acc[j / 2 & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q4_pair(q, q + kQ4_1, a + j)), pair_lanes(s8, j), acc[j / 2 & 1]);
    }
  }
  __m256 tail = fold(_mm512_add_ps(acc[0], acc[1]));
  float mins_tail = 0.f;
  for (; i < nb; ++i, b += kQ4_1, ++a) {
    tail = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8s8_vnni(q4_quants(b + 4), load32(a->q))), _mm256_set1_ps(f16(b) * a->d), tail);
    mins_tail += f16(b + 2) * a->d * float(int32_t(a->sum[0]) + a->sum[1]);
  }
  return hsum(tail) + hsum(mins) + mins_tail;
}

#endif

}  // namespace

DotQ8Fn dot_q8_legacy_kernel(DType t, CpuLevel level) {
  switch (level) {
    case CpuLevel::scalar:
      return t == DType::q8_0 ? dot_q8_0_scalar : t == DType::q4_0 ? dot_q4_0_scalar
           : t == DType::q4_1 ? dot_q4_1_scalar : nullptr;
#if defined(__x86_64__)
    case CpuLevel::avx2:
      return t == DType::q8_0 ? dot_q8_0_avx2 : t == DType::q4_0 ? dot_q4_0_avx2
           : t == DType::q4_1 ? dot_q4_1_avx2 : nullptr;
    case CpuLevel::avx512:
      return t == DType::q8_0 ? dot_q8_0_avx512 : t == DType::q4_0 ? dot_q4_0_avx512
           : t == DType::q4_1 ? dot_q4_1_avx512 : nullptr;
#else
    default: return nullptr;
#endif
  }
  return nullptr;
}

// No four-row kernels yet: the matmul calls the single-row kernel four times.
DotQ8x4Fn dot_q8x4_legacy_kernel(DType, CpuLevel) { return nullptr; }

}  // namespace herd
