// Dot products of f32, f16 and bf16 weight rows with f32 activations, f32 accumulation. f16 and
// bf16 are widened exactly to f32 (F16C, or a 16-bit shift for bf16) rather than rounding the
// activations to 16 bits for vdpbf16ps: decode is bound by reading the weights, not by these
// instructions, and the products stay those of the exact path up to summation order.
#include "backend/cpu/cpu-kernels.h"
#include "backend/cpu/simd-x86.h"

namespace herd {
namespace {

template <DType T>
float at(const void* w, int64_t i) {
  if constexpr (T == DType::f32) return static_cast<const float*>(w)[i];
  const uint16_t h = static_cast<const uint16_t*>(w)[i];
  if constexpr (T == DType::f16) return f16_to_f32(h);
  return bf16_to_f32(h);
}

template <DType T>
float dot_scalar(int64_t n, const void* w, const float* x) {
  // 16 independent partial sums, as the exact path keeps them.
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += at<T>(w, i + j) * x[i + j];
  float s = 0.f;
  for (; i < n; ++i) s += at<T>(w, i) * x[i];
  for (float v : acc) s += v;
  return s;
}

#if defined(__x86_64__)

template <DType T>
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8_avx2(const void* w, int64_t i) {
  if constexpr (T == DType::f32) return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  const auto* p = reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i);
  if constexpr (T == DType::f16) return _mm256_cvtph_ps(_mm_loadu_si128(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(p)), 16));
}

template <DType T>
__attribute__((target("avx2,fma,f16c"))) float dot_avx2(int64_t n, const void* w, const float* x) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int j = 0; j < 4; ++j)
      acc[j] = _mm256_fmadd_ps(load8_avx2<T>(w, i + 8 * j), _mm256_loadu_ps(x + i + 8 * j), acc[j]);
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load8_avx2<T>(w, i), _mm256_loadu_ps(x + i), acc[0]);
  float s = x86::hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) s += at<T>(w, i) * x[i];
  return s;
}

template <DType T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 load16_avx512(const void* w, int64_t i) {
  if constexpr (T == DType::f32) return _mm512_loadu_ps(static_cast<const float*>(w) + i);
  const auto* p = reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i);
  if constexpr (T == DType::f16) return _mm512_cvtph_ps(_mm256_loadu_si256(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p)), 16));
}

template <DType T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) float dot_avx512(int64_t n, const void* w, const float* x) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int j = 0; j < 4; ++j)
      acc[j] = _mm512_fmadd_ps(load16_avx512<T>(w, i + 16 * j), _mm512_loadu_ps(x + i + 16 * j), acc[j]);
  for (; i + 16 <= n; i += 16) acc[0] = _mm512_fmadd_ps(load16_avx512<T>(w, i), _mm512_loadu_ps(x + i), acc[0]);
  float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) s += at<T>(w, i) * x[i];
  return s;
}

// Up to four rows times several tokens: each row's 16-element chunk is loaded and widened once
// for a tile of up to six tokens, and each token's chunk serves the four rows, so the work is the
// FMAs (24 accumulators of the 32 registers). Every output has one accumulator, summed over the
// chunks in order and reduced at the end, whatever the tile: a token's result does not depend on
// the tokens beside it. A last partial chunk is loaded under a mask.
template <DType T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 load16_masked(const void* w, int64_t i, __mmask16 m) {
  if constexpr (T == DType::f32) return _mm512_maskz_loadu_ps(m, static_cast<const float*>(w) + i);
  const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + i);
  if constexpr (T == DType::f16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// One chunk of 16 columns (m: those present) into the accumulators.
template <DType Ty, int R, int T>
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline void tile_step(
    __m512 (&acc)[R][T], const void* w, size_t row_bytes, const float* x, int64_t x_stride, int64_t i, __mmask16 m) {
  __m512 wv[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) wv[r] = load16_masked<Ty>(static_cast<const uint8_t*>(w) + size_t(r) * row_bytes, i, m);
#pragma GCC unroll 6
  for (int t = 0; t < T; ++t) {
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + t * x_stride + i);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
  }
}

template <DType Ty, int R, int T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void tile_avx512(int64_t n, const void* w, size_t row_bytes,
                                                                      const float* x, int64_t x_stride, float* out,
                                                                      int64_t out_stride) {
  __m512 acc[R][T];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 6
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  // Whole chunks, then the last partial one under a mask: with the mask computed on every pass,
  // GCC 12 keeps the accumulators in memory and stores them all on each pass.
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) tile_step<Ty, R, T>(acc, w, row_bytes, x, x_stride, i, 0xFFFF);
  if (i < n) tile_step<Ty, R, T>(acc, w, row_bytes, x, x_stride, i, __mmask16((1u << (n - i)) - 1));
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 6
    for (int t = 0; t < T; ++t) {
      const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(acc[r][t]), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[r][t]), 1)));
      __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
      q = _mm_add_ps(q, _mm_movehl_ps(q, q));
      out[t * out_stride + r] = _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
    }
}

template <DType Ty, int R>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void tiles_avx512(int64_t n, const void* w, size_t row_bytes,
                                                                       const float* x, int64_t x_stride, int64_t n_tok,
                                                                       float* out, int64_t out_stride) {
  int64_t t = 0;
  for (; t + 6 <= n_tok; t += 6) tile_avx512<Ty, R, 6>(n, w, row_bytes, x + t * x_stride, x_stride, out + t * out_stride, out_stride);
  const float* xt = x + t * x_stride;
  float* ot = out + t * out_stride;
  switch (n_tok - t) {
    case 5: return tile_avx512<Ty, R, 5>(n, w, row_bytes, xt, x_stride, ot, out_stride);
    case 4: return tile_avx512<Ty, R, 4>(n, w, row_bytes, xt, x_stride, ot, out_stride);
    case 3: return tile_avx512<Ty, R, 3>(n, w, row_bytes, xt, x_stride, ot, out_stride);
    case 2: return tile_avx512<Ty, R, 2>(n, w, row_bytes, xt, x_stride, ot, out_stride);
    case 1: return tile_avx512<Ty, R, 1>(n, w, row_bytes, xt, x_stride, ot, out_stride);
    default: return;
  }
}

template <DType Ty>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void dot_tile_avx512(int64_t n, const void* w, size_t row_bytes, int rows,
                                                                          const float* x, int64_t x_stride, int64_t n_tok,
                                                                          float* out, int64_t out_stride) {
  if (rows == 4) return tiles_avx512<Ty, 4>(n, w, row_bytes, x, x_stride, n_tok, out, out_stride);
  for (int r = 0; r < rows; ++r)
    tiles_avx512<Ty, 1>(n, static_cast<const uint8_t*>(w) + size_t(r) * row_bytes, row_bytes, x, x_stride, n_tok, out + r, out_stride);
}

#endif

void axpy_f16_scalar(int64_t n, float a, const uint16_t* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * f16_to_f32(x[i]);
}

#if defined(__x86_64__)

__attribute__((target("avx2,fma,f16c"))) void axpy_f16_avx2(int64_t n, float a, const uint16_t* x, float* y) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, xv, _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += a * f16_to_f32(x[i]);
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void axpy_f16_avx512(int64_t n, float a, const uint16_t* x, float* y) {
  const __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 xv = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)));
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, xv, _mm512_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += a * f16_to_f32(x[i]);
}

#endif

}  // namespace

AxpyF16Fn axpy_f16_kernel(CpuLevel level) {
  switch (level) {
    case CpuLevel::scalar: return axpy_f16_scalar;
#if defined(__x86_64__)
    case CpuLevel::avx2: return axpy_f16_avx2;
    case CpuLevel::avx512: return axpy_f16_avx512;
#else
    default: return nullptr;
#endif
  }
  return nullptr;
}

DotF32TileFn dot_f32_tile_kernel(DType t, CpuLevel level) {
#if defined(__x86_64__)
  if (level == CpuLevel::avx512)
    return t == DType::f32 ? dot_tile_avx512<DType::f32> : t == DType::f16 ? dot_tile_avx512<DType::f16>
         : t == DType::bf16 ? dot_tile_avx512<DType::bf16> : nullptr;
#else
  (void)t, (void)level;
#endif
  return nullptr;
}

DotF32Fn dot_f32_kernel(DType t, CpuLevel level) {
  switch (level) {
    case CpuLevel::scalar:
      return t == DType::f32 ? dot_scalar<DType::f32> : t == DType::f16 ? dot_scalar<DType::f16>
           : t == DType::bf16 ? dot_scalar<DType::bf16> : nullptr;
#if defined(__x86_64__)
    case CpuLevel::avx2:
      return t == DType::f32 ? dot_avx2<DType::f32> : t == DType::f16 ? dot_avx2<DType::f16>
           : t == DType::bf16 ? dot_avx2<DType::bf16> : nullptr;
    case CpuLevel::avx512:
      return t == DType::f32 ? dot_avx512<DType::f32> : t == DType::f16 ? dot_avx512<DType::f16>
           : t == DType::bf16 ? dot_avx512<DType::bf16> : nullptr;
#else
    default: return nullptr;
#endif
  }
  return nullptr;
}

}  // namespace herd
