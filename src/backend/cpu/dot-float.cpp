// Dot products of f32, f16 and bf16 weight rows with f32 activations, f32 accumulation. f16 and
// bf16 are widened exactly to f32 (F16C, or a 16-bit shift for bf16) rather than rounding the
// activations to 16 bits for vdpbf16ps: decode is bound by reading the weights, not by these
// instructions, and the products stay those of the exact path up to summation order. The same
// loads serve the KV cache's rows (f16, or FP8 E4M3 codes widened exactly through f16) in
// attention's dots and its weighted sums of V rows (axpy).
#include "backend/cpu/cpu-kernels.h"

#include <algorithm>
#include <vector>

#include "backend/cpu/simd-x86.h"

namespace herd {
namespace {

template <DType T>
float at(const void* w, int64_t i) {
  if constexpr (T == DType::f32) return static_cast<const float*>(w)[i];
  if constexpr (T == DType::f8_e4m3) return e4m3_to_f32(static_cast<const uint8_t*>(w)[i]);
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

// E4M3 codes, sign-extended to 16 bits, as their f16 (cpu-kernels.h, kFp8F16Unit): (code << 7)
// with bit 14, the sign's second copy, cleared; that f16 times kFp8F16Unit is the code's value.
template <DType T>
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8_avx2(const void* w, int64_t i) {
  if constexpr (T == DType::f32) return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  if constexpr (T == DType::f8_e4m3) {
    const __m128i codes = _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(static_cast<const uint8_t*>(w) + i)));
    const __m128i h = _mm_and_si128(_mm_slli_epi16(codes, 7), _mm_set1_epi16(short(0xBF80)));
    return _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(kFp8F16Unit));
  }
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
  if constexpr (T == DType::f8_e4m3) {
    const __m256i codes = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint8_t*>(w) + i)));
    const __m256i h = _mm256_and_si256(_mm256_slli_epi16(codes, 7), _mm256_set1_epi16(short(0xBF80)));
    return _mm512_mul_ps(_mm512_cvtph_ps(h), _mm512_set1_ps(kFp8F16Unit));
  }
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

// Up to 16 rows times any number of tokens, the rows taken in quads: one 16-lane vector holds four
// consecutive columns of four rows and meets a token's four columns broadcast to every 128-bit
// lane, so each FMA serves four outputs. Each output sums four lanes, every lane over its columns
// in order, and reduces them at the end as (l0 + l2) + (l1 + l3), whatever the tile: a token's
// result does not depend on the tokens beside it.
//
// Up to kDirectTokens tokens (decode, batched decode) meet the rows as stored: each chunk of 16
// columns of a quad is widened and transposed in registers (four loads, four widenings, eight
// shuffles for 64 weights) and serves a tile of two quads (8 rows) by up to six tokens. The weights
// are read once per tile of tokens, which is what bounds decode. More tokens (prefill) would widen
// and transpose every chunk again for each tile, on the FMAs' ports: there the rows are widened
// once per product, a block of kBlock columns at a time, into a per-thread scratch that stays in
// L1 while every tile of tokens passes over it. Such a tile is all four quads by up to six tokens
// (24 accumulators of the 32 registers; 4 weight vectors and 6 broadcasts per 24 FMAs, 128 steps
// per block), and its sums are saved between blocks and reduced after the last one: the same FMAs
// in the same order as the direct tiles'.
constexpr int kQuads = kPanelRows / 4;  // quads of a chunk of rows
constexpr int kTileTokens = 6;
constexpr int64_t kDirectTokens = 24;  // up to this many tokens, the rows as stored
constexpr int64_t kBlock = 512;        // columns widened at a time: 32 KiB of f32 for 16 rows
constexpr int64_t kGroupTokens = 192;  // tokens whose saved sums stay in cache: 48 KiB

template <DType T>
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline __m512 load16_masked(const void* w, int64_t i,
                                                                                               __mmask16 m) {
  if constexpr (T == DType::f32) return _mm512_maskz_loadu_ps(m, static_cast<const float*>(w) + i);
  const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + i);
  if constexpr (T == DType::f16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// Columns [i, i + 16) (m: those present) of rows 4q .. 4q + 3 of `rows` rows, as the quad's
// vectors of four steps: v[s] lane 4j + l = row 4q + j, column i + 4s + l. Rows past `rows` and
// columns outside m are zero.
template <DType Ty>
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline void load_quad(const void* w, size_t row_bytes, int rows,
                                                                                          int q, int64_t i, __mmask16 m,
                                                                                          __m512 (&v)[4]) {
  __m512 a[4];  // row 4q + j, columns i .. i + 15
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j)
    a[j] = 4 * q + j < rows ? load16_masked<Ty>(static_cast<const uint8_t*>(w) + size_t(4 * q + j) * row_bytes, i, m)
                            : _mm512_setzero_ps();
  // A 4 x 4 transpose of 128-bit blocks: step s gets block s of each row.
  const __m512 t0 = _mm512_shuffle_f32x4(a[0], a[1], 0x44), t1 = _mm512_shuffle_f32x4(a[0], a[1], 0xEE);
  const __m512 t2 = _mm512_shuffle_f32x4(a[2], a[3], 0x44), t3 = _mm512_shuffle_f32x4(a[2], a[3], 0xEE);
  v[0] = _mm512_shuffle_f32x4(t0, t2, 0x88);
  v[1] = _mm512_shuffle_f32x4(t0, t2, 0xDD);
  v[2] = _mm512_shuffle_f32x4(t1, t3, 0x88);
  v[3] = _mm512_shuffle_f32x4(t1, t3, 0xDD);
}

// Columns [c, c + len) of `rows` rows widened into quads: wide[(s * kQuads + q) * 16, +16) is
// step s of quad q.
template <DType Ty>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void widen_block(const void* w, size_t row_bytes, int rows, int64_t c,
                                                                      int64_t len, float* wide) {
  for (int q = 0; q < kQuads; ++q)
    for (int64_t i = 0; i < len; i += 16) {
      __m512 v[4];
      load_quad<Ty>(w, row_bytes, rows, q, c + i, len - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (len - i)) - 1), v);
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) _mm512_store_ps(wide + (i + 4 * s) * 4 * kQuads + q * 16, v[s]);  // step i / 4 + s
    }
}

// Four activations (m: those present) broadcast to every 128-bit lane; a whole load must stay
// unmasked for GCC 12 to fold it into vbroadcastf32x4 rather than add a shuffle.
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline __m512 broadcast4(const float* x, __mmask8 m) {
  return _mm512_broadcast_f32x4(m == 0xF ? _mm_loadu_ps(x) : _mm_maskz_loadu_ps(m, x));
}

// Each of the quads' rows summed over its four lanes, (l0 + l2) + (l1 + l3): the 4Q rows of
// v[0, Q) in row order, in lanes 0 .. 4Q - 1.
template <int Q>
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline __m512 reduce_quads(const __m512 (&v)[Q]) {
  __m512 r[Q];
#pragma GCC unroll 4
  for (int q = 0; q < Q; ++q) {
    const __m512 h = _mm512_add_ps(v[q], _mm512_permute_ps(v[q], 0x4E));  // lanes 0, 1: l0 + l2, l1 + l3
    r[q] = _mm512_add_ps(h, _mm512_permute_ps(h, 0xB1));                  // lane 0 of each quarter: the row's sum
  }
  const __m512i pick = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512 lo = _mm512_permutex2var_ps(r[0], pick, r[1]);
  if constexpr (Q == 2) return lo;
  else return _mm512_shuffle_f32x4(lo, _mm512_permutex2var_ps(r[2], pick, r[3]), 0x44);
}

// Where a tile's sums come from and go: zero (first) or the saved sums, and reduced into out
// (last) or saved again. sums[(t * kQuads + q) * 16, +16) holds token t's accumulator of quad q.
struct TileSums {
  float* sums;
  bool first, last;
};

// One chunk of 16 columns (m: those present) of Q quads straight from the rows: each token's
// activations broadcast once for all the quads.
template <DType Ty, int Q, int T>
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline void direct_chunk(
    __m512 (&acc)[Q][T], const void* w, size_t row_bytes, const float* x, int64_t x_stride, int64_t i, __mmask16 m) {
  __m512 v[Q][4];
#pragma GCC unroll 4
  for (int q = 0; q < Q; ++q) load_quad<Ty>(w, row_bytes, 4 * Q, q, i, m, v[q]);
#pragma GCC unroll 4
  for (int s = 0; s < 4; ++s) {
    const __mmask8 ms = __mmask8((m >> (4 * s)) & 0xF);
    if (ms == 0) break;  // past the rows' end
#pragma GCC unroll 6
    for (int t = 0; t < T; ++t) {
      const __m512 xv = broadcast4(x + t * x_stride + i + 4 * s, ms);
#pragma GCC unroll 4
      for (int q = 0; q < Q; ++q) acc[q][t] = _mm512_fmadd_ps(v[q][s], xv, acc[q][t]);
    }
  }
}

// One step of four columns (m: those present) of the widened block's quads.
template <int Q, int T>
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline void block_step(__m512 (&acc)[Q][T], const float* wide,
                                                                                           const float* x, int64_t x_stride,
                                                                                           int64_t i, __mmask8 m) {
  __m512 wv[Q];
#pragma GCC unroll 4
  for (int q = 0; q < Q; ++q) wv[q] = _mm512_load_ps(wide + i * 4 * kQuads + q * 16);  // step i / 4
#pragma GCC unroll 6
  for (int t = 0; t < T; ++t) {
    const __m512 xv = broadcast4(x + t * x_stride + i, m);
#pragma GCC unroll 4
    for (int q = 0; q < Q; ++q) acc[q][t] = _mm512_fmadd_ps(wv[q], xv, acc[q][t]);
  }
}

// Q quads (4Q rows, `rows` of them present) by T tokens over n columns: the rows as stored (Direct;
// all present), or the widened block (w: its first quad); out[t * out_stride + r] for r < rows, or
// the sums saved.
template <DType Ty, int Q, int T, bool Direct>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void quad_tile(int64_t n, const void* w, size_t row_bytes, const float* x,
                                                                    int64_t x_stride, TileSums s, float* out,
                                                                    int64_t out_stride, int rows) {
  __m512 acc[Q][T];
#pragma GCC unroll 4
  for (int q = 0; q < Q; ++q)
#pragma GCC unroll 6
    for (int t = 0; t < T; ++t) acc[q][t] = s.first ? _mm512_setzero_ps() : _mm512_load_ps(s.sums + (t * kQuads + q) * 16);
  // Whole chunks or steps, then a last partial one under a mask: with the mask computed on every
  // pass, GCC 12 keeps the accumulators in memory.
  int64_t i = 0;
  if constexpr (Direct) {
    for (; i + 16 <= n; i += 16) direct_chunk<Ty, Q, T>(acc, w, row_bytes, x, x_stride, i, 0xFFFF);
    if (i < n) direct_chunk<Ty, Q, T>(acc, w, row_bytes, x, x_stride, i, __mmask16((1u << (n - i)) - 1));
  } else {
    for (; i + 4 <= n; i += 4) block_step<Q, T>(acc, static_cast<const float*>(w), x, x_stride, i, 0xF);
    if (i < n) block_step<Q, T>(acc, static_cast<const float*>(w), x, x_stride, i, __mmask8((1u << (n - i)) - 1));
  }
#pragma GCC unroll 6
  for (int t = 0; t < T; ++t) {
    if (!s.last) {
#pragma GCC unroll 4
      for (int q = 0; q < Q; ++q) _mm512_store_ps(s.sums + (t * kQuads + q) * 16, acc[q][t]);
      continue;
    }
    __m512 v[Q];
#pragma GCC unroll 4
    for (int q = 0; q < Q; ++q) v[q] = acc[q][t];
    _mm512_mask_storeu_ps(out + t * out_stride, __mmask16((1u << rows) - 1), reduce_quads<Q>(v));
  }
}

// Every token, six at a time, against the rows: in tiles of Q quads.
template <DType Ty, int Q, bool Direct>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void quad_tiles(int64_t n, const void* w, size_t row_bytes, int rows,
                                                                     const float* x, int64_t x_stride, int64_t n_tok,
                                                                     TileSums s, float* out, int64_t out_stride) {
  for (int64_t t = 0; t < n_tok; t += kTileTokens)
    for (int q = 0; 4 * q < rows; q += Q) {
      const void* wq = Direct ? static_cast<const void*>(static_cast<const uint8_t*>(w) + size_t(4 * q) * row_bytes)
                              : static_cast<const void*>(static_cast<const float*>(w) + q * 16);
      const float* xt = x + t * x_stride;
      float* ot = out + t * out_stride + 4 * q;
      // sums is null when one pass covers the whole length (nothing to carry between passes).
      const TileSums st{s.sums ? s.sums + (t * kQuads + q) * 16 : nullptr, s.first, s.last};
      const int rq = std::min(4 * Q, rows - 4 * q);
      switch (std::min<int64_t>(kTileTokens, n_tok - t)) {
        case 6: quad_tile<Ty, Q, 6, Direct>(n, wq, row_bytes, xt, x_stride, st, ot, out_stride, rq); break;
        case 5: quad_tile<Ty, Q, 5, Direct>(n, wq, row_bytes, xt, x_stride, st, ot, out_stride, rq); break;
        case 4: quad_tile<Ty, Q, 4, Direct>(n, wq, row_bytes, xt, x_stride, st, ot, out_stride, rq); break;
        case 3: quad_tile<Ty, Q, 3, Direct>(n, wq, row_bytes, xt, x_stride, st, ot, out_stride, rq); break;
        case 2: quad_tile<Ty, Q, 2, Direct>(n, wq, row_bytes, xt, x_stride, st, ot, out_stride, rq); break;
        default: quad_tile<Ty, Q, 1, Direct>(n, wq, row_bytes, xt, x_stride, st, ot, out_stride, rq); break;
      }
    }
}

template <DType Ty>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void dot_tile_avx512(int64_t n, const void* w, size_t row_bytes, int rows,
                                                                          const float* x, int64_t x_stride, int64_t n_tok,
                                                                          float* out, int64_t out_stride) {
  if (rows == kPanelRows && n_tok <= kDirectTokens)
    return quad_tiles<Ty, 2, true>(n, w, row_bytes, rows, x, x_stride, n_tok, {nullptr, true, true}, out, out_stride);
  // The widened block, then the saved sums of a group of tokens.
  constexpr size_t kWide = kBlock * kPanelRows, kSums = kGroupTokens * kQuads * 16;
  struct alignas(64) Lanes {
    float v[16];
  };
  thread_local std::vector<Lanes> scratch((kWide + kSums) / 16);
  float* wide = scratch[0].v;
  float* sums = wide + kWide;
  for (int64_t g = 0; g < n_tok; g += kGroupTokens) {
    const int64_t n_group = std::min(kGroupTokens, n_tok - g);
    for (int64_t c = 0; c < n; c += kBlock) {
      const int64_t len = std::min(kBlock, n - c);
      widen_block<Ty>(w, row_bytes, rows, c, len, wide);
      quad_tiles<DType::f32, kQuads, false>(len, wide, 0, rows, x + g * x_stride + c, x_stride, n_group,
                                            {sums, c == 0, c + len == n}, out + g * out_stride, out_stride);
    }
  }
}

#endif

// y += a * x for a KV cache row x.
template <DType T>
void axpy_scalar(int64_t n, float a, const void* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * at<T>(x, i);
}

#if defined(__x86_64__)

template <DType T>
__attribute__((target("avx2,fma,f16c"))) void axpy_avx2(int64_t n, float a, const void* x, float* y) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, load8_avx2<T>(x, i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * at<T>(x, i);
}

template <DType T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void axpy_avx512(int64_t n, float a, const void* x, float* y) {
  const __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, load16_avx512<T>(x, i), _mm512_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * at<T>(x, i);
}

#endif

// The kernel K<T> of a type t among f32, f16, bf16 and f8_e4m3 (null for the others).
#define HERD_BY_FLOAT_TYPE(K, t)                                                                      \
  ((t) == DType::f32 ? K<DType::f32> : (t) == DType::f16 ? K<DType::f16> : (t) == DType::bf16 ? K<DType::bf16> \
   : (t) == DType::f8_e4m3 ? K<DType::f8_e4m3> : nullptr)

}  // namespace

// The KV cache's types only: f16 and f8_e4m3.
#define HERD_BY_KV_TYPE(K, t) ((t) == DType::f16 ? K<DType::f16> : (t) == DType::f8_e4m3 ? K<DType::f8_e4m3> : nullptr)

AxpyFn axpy_kernel(DType t, CpuLevel level) {
  switch (level) {
    case CpuLevel::scalar: return HERD_BY_KV_TYPE(axpy_scalar, t);
#if defined(__x86_64__)
    case CpuLevel::avx2: return HERD_BY_KV_TYPE(axpy_avx2, t);
    case CpuLevel::avx512: return HERD_BY_KV_TYPE(axpy_avx512, t);
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
    case CpuLevel::scalar: return HERD_BY_FLOAT_TYPE(dot_scalar, t);
#if defined(__x86_64__)
    case CpuLevel::avx2: return HERD_BY_FLOAT_TYPE(dot_avx2, t);
    case CpuLevel::avx512: return HERD_BY_FLOAT_TYPE(dot_avx512, t);
#else
    default: return nullptr;
#endif
  }
  return nullptr;
}

}  // namespace herd
