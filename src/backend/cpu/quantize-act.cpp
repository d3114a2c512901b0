// Activations to Q8Block, at each level. All levels round half to even (nearbyint and the SIMD
// conversions in the default rounding mode), so they produce identical blocks. A block with a
// NaN or an infinity gets d = NaN (and meaningless q): the non-finite value reaches the logits,
// where the engine reports it, instead of vanishing into a saturated integer.
#include <cmath>
#include <limits>

#include "backend/cpu/cpu-kernels.h"
#include "backend/cpu/simd-x86.h"

namespace herd {
namespace {

void finish_block(Q8Block& b, float amax, bool finite) {
  b.d = finite ? amax / 127.f : std::numeric_limits<float>::quiet_NaN();
}

void quantize_scalar(const float* x, int64_t n, Q8Block* out) {
  for (int64_t blk = 0; blk < n / 32; ++blk, x += 32) {
    Q8Block& b = out[blk];
    float amax = 0.f;
    bool finite = true;
    for (int i = 0; i < 32; ++i) {
      finite &= std::isfinite(x[i]);
      amax = std::max(amax, std::fabs(x[i]));
    }
    finish_block(b, amax, finite);
    const float id = finite && amax > 0.f ? 127.f / amax : 0.f;
    b.sum[0] = b.sum[1] = 0;
    for (int i = 0; i < 32; ++i) {
      b.q[i] = finite ? int8_t(std::nearbyint(x[i] * id)) : 0;
      b.sum[i / 16] = int16_t(b.sum[i / 16] + b.q[i]);
    }
  }
}

#if defined(__x86_64__)

__attribute__((target("avx2,fma"))) void quantize_avx2(const float* x, int64_t n, Q8Block* out) {
  const __m256 sign = _mm256_set1_ps(-0.f), inf = _mm256_set1_ps(INFINITY);
  for (int64_t blk = 0; blk < n / 32; ++blk, x += 32) {
    Q8Block& b = out[blk];
    __m256 v[4], amax = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    for (int j = 0; j < 4; ++j) {
      v[j] = _mm256_loadu_ps(x + 8 * j);
      const __m256 a = _mm256_andnot_ps(sign, v[j]);
      bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, inf, _CMP_NLT_UQ));  // NaN or +-inf
      amax = _mm256_max_ps(amax, a);
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float a = _mm_cvtss_f32(m);
    const bool finite = _mm256_movemask_ps(bad) == 0;
    finish_block(b, a, finite);
    const __m256 id = _mm256_set1_ps(finite && a > 0.f ? 127.f / a : 0.f);
    __m256i q[4];
    for (int j = 0; j < 4; ++j) q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], id));
    // Sums of each half before packing: elements 0-15 are q[0], q[1].
    const __m256i s0 = _mm256_add_epi32(q[0], q[1]), s1 = _mm256_add_epi32(q[2], q[3]);
    const __m256i hs = _mm256_hadd_epi32(s0, s1);  // pairs of s0 then s1 per 128-bit lane
    const __m256i hs2 = _mm256_hadd_epi32(hs, hs);
    const __m128i lo = _mm256_castsi256_si128(hs2), hi = _mm256_extracti128_si256(hs2, 1);
    const __m128i tot = _mm_add_epi32(lo, hi);  // [sum0, sum1, sum0, sum1]
    b.sum[0] = int16_t(_mm_cvtsi128_si32(tot));
    b.sum[1] = int16_t(_mm_extract_epi32(tot, 1));
    // int32 -> int8 with the lane order restored after the in-lane packs.
    const __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
    __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b.q), p8);
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void quantize_avx512(const float* x, int64_t n, Q8Block* out) {
  const __m512 inf = _mm512_set1_ps(INFINITY);
  for (int64_t blk = 0; blk < n / 32; ++blk, x += 32) {
    Q8Block& b = out[blk];
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const __m512 a0 = _mm512_abs_ps(v0), a1 = _mm512_abs_ps(v1);
    const __mmask16 bad = _mm512_cmp_ps_mask(a0, inf, _CMP_NLT_UQ) | _mm512_cmp_ps_mask(a1, inf, _CMP_NLT_UQ);
    const float a = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
    finish_block(b, a, bad == 0);
    const __m512 id = _mm512_set1_ps(bad == 0 && a > 0.f ? 127.f / a : 0.f);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
    b.sum[0] = int16_t(_mm512_reduce_add_epi32(q0));
    b.sum[1] = int16_t(_mm512_reduce_add_epi32(q1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(b.q), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(b.q + 16), _mm512_cvtsepi32_epi8(q1));
  }
}

#endif

}  // namespace

QuantizeQ8Fn quantize_q8_kernel(CpuLevel level) {
  switch (level) {
    case CpuLevel::scalar: return quantize_scalar;
#if defined(__x86_64__)
    case CpuLevel::avx2: return quantize_avx2;
    case CpuLevel::avx512: return quantize_avx512;
#else
    default: return nullptr;
#endif
  }
  return nullptr;
}

}  // namespace herd
