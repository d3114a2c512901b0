// Quantized weights repacked into panels of kPanelRows rows, and the multi-token kernels that
// multiply a panel with several tokens' Q8Block activations at once (cpu-kernels.h, PanelKernel).
//
// Why a new layout: in GGUF each row's blocks are contiguous, so a SIMD dot product of one row
// ends with int32 lanes that belong to different blocks, each needing its own scale: per block
// and token the kernel pays a lane permute, a conversion and an FMA beside a few VNNI products.
// In a panel, the 16 rows' blocks are interleaved four bytes at a time, so one VNNI instruction
// (vpdpbusd) against four activation bytes broadcast to every lane advances all 16 rows of a
// token, lane r holding row r. A block then ends with one int32 sum per row in one register, and
// its scales, one per row in one register too, are applied with one conversion and two FMAs for
// 16 rows. Each weight register (and its nibble unpacking) serves every token of a tile, and each
// activation load serves 16 rows.
//
// Panel layout, per 32-element block (nb = k / 32 of them, one after another):
//   quants: kBits = 8: 8 x 64 bytes, chunk c (c < 8) holding bytes [4c, 4c + 4) of each row's
//           block at 4r; kBits = 4: 4 x 64 bytes likewise, byte j holding element j in its low
//           nibble and element j + 16 in its high nibble; kBits = 6 (Q6_K, where whole bytes took
//           40 bytes a row and block): those nibbles, then 2 x 64 bytes of the top two bits,
//           byte 4r + i of plane k holding those of elements j and j + 16 for j = 8k + i (bits
//           0-3) and j = 8k + 4 + i (bits 4-7). Quants are unsigned.
//   d:      H x 16 f32, the scale of each row's block (H = 2: of each 16-element half).
//   m:      16 f32 (types with a minimum), added as m * a.d * (a.sum[0] + a.sum[1]).
//   z:      16 int32 (INT4), each row's zero point negated in both 16-bit halves.
// The K-quants keep their scales coded, as the file does, so that decode reads fewer bytes (Q4_K
// 19 bytes a row and block where f32 scales took 24, Q6_K 26.5 where they took 32): per
// 256-element superblock, 16 f32 of each row's d (and 16 of its -dmin), then the 8 blocks' quants
// as above, then per block 16 bytes of each row's scale code per half (and 16 of its minimum
// code), widened and multiplied by d in the kernel: d * code is exact in f32 (an 11-bit by 8-bit
// product), the same value the file's dequantization gives.
// A type's integer offset (Q8_0's -128 after the +128 that makes its quants unsigned, Q4_0's -8,
// Q6_K's -32) is where the int32 sums start: kOffset times the activation block's sums. INT4's
// offset differs by row and block: its sums start at -z * (a.sum[0] + a.sum[1]), one madd of the
// sums against z, so they are the scalar kernel's integers exactly.
// Rows past the weight's end are zero.
//
// Every output is one lane of one accumulator, summed block by block in the same order whatever
// the tile size or the thread that runs it: a token's result does not depend on the batch.
#include <cstring>
#include <vector>

#include "backend/cpu/cpu-kernels.h"
#include "backend/cpu/simd-x86.h"
#include "common/quant.h"

namespace herd {
namespace {

// How a type lies in a panel.
struct PanelFormat {
  int bits;     // 4, 6 or 8
  int halves;   // scales per block: 1, or 2 (one per 16 elements)
  int offset;   // integer offset of the unsigned quants
  bool has_m;   // a per-block minimum
  bool has_z;   // a per-block integer zero point
  bool coded;   // scales as per-block codes times a per-superblock d (the K-quants)
};

constexpr PanelFormat panel_format(DType t) {
  switch (t) {
    case DType::q8_0: return {8, 1, -128, false, false, false};
    case DType::q4_0: return {4, 1, -8, false, false, false};
    case DType::q4_1: return {4, 1, 0, true, false, false};
    case DType::q4_k: return {4, 1, 0, true, false, true};
    case DType::q5_k: return {8, 1, 0, true, false, true};
    case DType::q6_k: return {6, 2, -32, false, false, true};
    case DType::int4: return {4, 1, 0, false, true, false};
    default: return {0, 0, 0, false, false, false};
  }
}

constexpr size_t quant_bytes(PanelFormat f) { return 64 * size_t(f.bits); }
// One block: its quants and f32 scales (not coded).
constexpr size_t block_bytes(PanelFormat f) {
  return quant_bytes(f) + size_t(kPanelRows) * (size_t(f.halves) * 4 + (f.has_m ? 4 : 0) + (f.has_z ? 4 : 0));
}
// Coded: one block's scale (and minimum) codes, and one superblock of 8 blocks.
constexpr size_t code_bytes(PanelFormat f) { return size_t(kPanelRows) * size_t(f.halves + (f.has_m ? 1 : 0)); }
constexpr size_t super_head_bytes(PanelFormat f) { return 64 * size_t(f.has_m ? 2 : 1); }
constexpr size_t super_bytes(PanelFormat f) { return super_head_bytes(f) + 8 * (quant_bytes(f) + code_bytes(f)); }
static_assert(super_bytes(panel_format(DType::q4_k)) % 64 == 0 && super_bytes(panel_format(DType::q6_k)) % 64 == 0 &&
              super_bytes(panel_format(DType::q5_k)) % 64 == 0);
// Bytes a panel holds per block, on average, and in all.
constexpr size_t stride_bytes(PanelFormat f) { return f.coded ? super_bytes(f) / 8 : block_bytes(f); }
constexpr size_t panel_bytes_of(PanelFormat f, int64_t k) { return size_t(k / 32) * stride_bytes(f); }

// Block b's quants in a panel.
constexpr size_t quants_offset(PanelFormat f, int64_t b) {
  return f.coded ? size_t(b / 8) * super_bytes(f) + super_head_bytes(f) + size_t(b % 8) * quant_bytes(f)
                 : size_t(b) * block_bytes(f);
}
// Coded: block b's codes, and its superblock's d (then -dmin).
constexpr size_t codes_offset(PanelFormat f, int64_t b) {
  return size_t(b / 8) * super_bytes(f) + super_head_bytes(f) + 8 * quant_bytes(f) + size_t(b % 8) * code_bytes(f);
}
constexpr size_t super_offset(PanelFormat f, int64_t b) { return size_t(b / 8) * super_bytes(f); }

float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// One row's blocks as unsigned quants u[32], scales d[2], minimum m and zero point z per 32
// elements; the K-quants' as their codes (scales code[0, H), minimum code[H]) and their
// superblock's d and -dmin instead.
struct RowBlock {
  uint8_t u[32];
  float d[2];
  float m;
  int z;
  int8_t code[3];
  float super_d, super_m;
};

template <DType T>
void decode_row(const uint8_t* w, int64_t nb, RowBlock* out) {
  if constexpr (T == DType::q4_k || T == DType::q5_k || T == DType::q6_k) {
    const size_t bytes = dtype_block(T).bytes;
    for (int64_t s = 0; s < nb / 8; ++s) {
      const KBlock k = unpack_k(T, w + size_t(s) * bytes);
      for (int g = 0; g < 8; ++g) {
        RowBlock& o = out[8 * s + g];
        for (int i = 0; i < 32; ++i) o.u[i] = uint8_t(k.q[32 * g + i] + (T == DType::q6_k ? 32 : 0));
        o.super_d = k.d;
        o.super_m = -k.dmin;
        if constexpr (T == DType::q6_k) {
          o.code[0] = int8_t(k.scale[2 * g]);
          o.code[1] = int8_t(k.scale[2 * g + 1]);
        } else {
          o.code[0] = int8_t(k.scale[g]);  // six bits: [0, 64)
          o.code[1] = int8_t(k.min[g]);
        }
      }
    }
  } else {
    constexpr size_t bytes = T == DType::q8_0 ? 34 : T == DType::q4_0 ? 18 : 20;  // Q4_1, INT4: 20
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* p = w + size_t(b) * bytes;
      RowBlock& o = out[b];
      o.d[0] = o.d[1] = f16_at(p);
      o.m = T == DType::q4_1 ? f16_at(p + 2) : 0.f;
      o.z = T == DType::int4 ? p[2] : 0;
      if constexpr (T == DType::q8_0) {
        for (int i = 0; i < 32; ++i) o.u[i] = uint8_t(int(int8_t(p[2 + i])) + 128);
      } else {
        const uint8_t* q = p + (T == DType::q4_0 ? 2 : 4);
        for (int i = 0; i < 16; ++i) o.u[i] = q[i] & 0xF, o.u[i + 16] = q[i] >> 4;
      }
    }
  }
}

template <DType T>
void pack_panel(const void* w, size_t row_bytes, int rows, int64_t k, uint8_t* panel) {
  constexpr PanelFormat f = panel_format(T);
  const int64_t nb = k / 32;
  std::memset(panel, 0, panel_bytes_of(f, k));
  std::vector<RowBlock> row(static_cast<size_t>(nb));
  for (int r = 0; r < rows; ++r) {
    decode_row<T>(static_cast<const uint8_t*>(w) + size_t(r) * row_bytes, nb, row.data());
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* q = panel + quants_offset(f, b);
      const RowBlock& o = row[size_t(b)];
      if constexpr (f.bits == 8) {
        for (int j = 0; j < 32; ++j) q[(j / 4) * 64 + 4 * r + j % 4] = o.u[j];
      } else {
        for (int j = 0; j < 16; ++j) q[(j / 4) * 64 + 4 * r + j % 4] = uint8_t((o.u[j] & 0xF) | (o.u[j + 16] & 0xF) << 4);
      }
      if constexpr (f.bits == 6) {
        // The top two bits of elements j and j + 16 of chunk c (j = 4c + i), for chunks 2k and 2k + 1,
        // in byte 4r + i of plane k: bits 0-1, 2-3 (chunk 2k), 4-5, 6-7 (chunk 2k + 1).
        for (int c = 0; c < 4; ++c)
          for (int i = 0; i < 4; ++i) {
            const int j = 4 * c + i, shift = 4 * (c % 2);
            q[64 * (4 + c / 2) + 4 * r + i] |= uint8_t(((o.u[j] >> 4) | (o.u[j + 16] >> 4) << 2) << shift);
          }
      }
      if constexpr (f.coded) {
        uint8_t* codes = panel + codes_offset(f, b);
        for (int h = 0; h < f.halves + (f.has_m ? 1 : 0); ++h) codes[16 * h + r] = uint8_t(o.code[h]);
        auto* super = reinterpret_cast<float*>(panel + super_offset(f, b));
        super[r] = o.super_d;
        if (f.has_m) super[16 + r] = o.super_m;
      } else {
        auto* d = reinterpret_cast<float*>(q + quant_bytes(f));
        for (int h = 0; h < f.halves; ++h) d[16 * h + r] = o.d[h];
        if (f.has_m) d[16 * f.halves + r] = o.m;
        if (f.has_z) {
          const uint32_t nz = uint16_t(-o.z);
          const uint32_t word = nz | nz << 16;
          std::memcpy(q + quant_bytes(f) + 64 * (f.halves + (f.has_m ? 1 : 0)) + 4 * r, &word, 4);
        }
      }
    }
  }
}

#if defined(__x86_64__)
using namespace x86;

HERD_AVX512 inline __m512i bcast32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Decode reads each panel once, from memory: the kernel asks for the lines kPrefetchBlocks blocks
// ahead, which the hardware prefetcher alone does not do soon enough (decode 7-11% faster on this
// machine's Q8_0, Q4_0 and Q4_K_M models; 2 and 12 blocks ahead gained less).
constexpr int kPrefetchBlocks = 4;

// T tokens (a + t * nb) against one panel: out[t * out_stride + r] for the rows of `rows`.
// 16 signed byte codes as f32.
HERD_AVX512 inline __m512 widen_codes(const uint8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(p))));
}

template <DType Ty, int T>
HERD_AVX512 void panel_tile(int64_t nb, const uint8_t* panel, const Q8Block* a, float* out, int64_t out_stride, __mmask16 rows) {
  constexpr PanelFormat f = panel_format(Ty);
  constexpr int H = f.halves;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  // The offset times sum[0] + sum[1] (one half), or times sum[h] alone (two halves).
  const __m512i offset[2] = {H == 1 ? _mm512_set1_epi16(short(f.offset)) : _mm512_set1_epi32(f.offset & 0xFFFF),
                             _mm512_set1_epi32(int32_t(uint32_t(uint16_t(f.offset)) << 16))};
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* ahead = panel + size_t(b + kPrefetchBlocks) * stride_bytes(f);
    for (size_t i = 0; i < stride_bytes(f); i += 64) _mm_prefetch(reinterpret_cast<const char*>(ahead + i), _MM_HINT_T0);
    const uint8_t* p = panel + quants_offset(f, b);
    __m512i isum[H][T];
    if constexpr (f.has_z) {
      static_assert(H == 1 && f.offset == 0);
      const __m512i nz = _mm512_load_si512(p + quant_bytes(f) + 64 * (H + (f.has_m ? 1 : 0)));
      for (int t = 0; t < T; ++t) isum[0][t] = _mm512_madd_epi16(bcast32(a[t * nb + b].sum), nz);
    } else {
      for (int t = 0; t < T; ++t)
        for (int h = 0; h < H; ++h)
          isum[h][t] = f.offset ? _mm512_madd_epi16(bcast32(a[t * nb + b].sum), offset[h]) : _mm512_setzero_si512();
    }
    if constexpr (f.bits == 8) {
#pragma GCC unroll 8
      for (int c = 0; c < 8; ++c) {
        const __m512i w = _mm512_load_si512(p + 64 * c);
        for (int t = 0; t < T; ++t)
          isum[H == 2 ? c / 4 : 0][t] = _mm512_dpbusd_epi32(isum[H == 2 ? c / 4 : 0][t], w, bcast32(a[t * nb + b].q + 4 * c));
      }
    } else {
      const __m512i top2 = _mm512_set1_epi8(0x30);
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
        const __m512i w = _mm512_load_si512(p + 64 * c);
        __m512i lo = _mm512_and_si512(w, low4), hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), low4);
        if constexpr (f.bits == 6) {
          // Each byte's two top bits to bits 4-5 (16-bit shifts: what crosses into the next byte is
          // masked off).
          const __m512i plane = _mm512_load_si512(p + 64 * (4 + c / 2));
          const __m512i lo_top = c % 2 ? plane : _mm512_slli_epi16(plane, 4);
          const __m512i hi_top = c % 2 ? _mm512_srli_epi16(plane, 2) : _mm512_slli_epi16(plane, 2);
          lo = _mm512_or_si512(lo, _mm512_and_si512(lo_top, top2));
          hi = _mm512_or_si512(hi, _mm512_and_si512(hi_top, top2));
        }
        for (int t = 0; t < T; ++t) {
          isum[0][t] = _mm512_dpbusd_epi32(isum[0][t], lo, bcast32(a[t * nb + b].q + 4 * c));
          isum[H - 1][t] = _mm512_dpbusd_epi32(isum[H - 1][t], hi, bcast32(a[t * nb + b].q + 16 + 4 * c));
        }
      }
    }
    // Each row's scale per half, and its minimum.
    __m512 d[H], m = _mm512_setzero_ps();
    if constexpr (f.coded) {
      const uint8_t* codes = panel + codes_offset(f, b);
      const auto* super = reinterpret_cast<const float*>(panel + super_offset(f, b));
      for (int h = 0; h < H; ++h) d[h] = _mm512_mul_ps(_mm512_load_ps(super), widen_codes(codes + 16 * h));
      if constexpr (f.has_m) m = _mm512_mul_ps(_mm512_load_ps(super + 16), widen_codes(codes + 16 * H));
    } else {
      const auto* scales = reinterpret_cast<const float*>(p + quant_bytes(f));
      for (int h = 0; h < H; ++h) d[h] = _mm512_load_ps(scales + 16 * h);
      if constexpr (f.has_m) m = _mm512_load_ps(scales + 16 * H);
    }
    for (int t = 0; t < T; ++t) {
      const Q8Block& q = a[t * nb + b];
      __m512 s = _mm512_mul_ps(_mm512_cvtepi32_ps(isum[0][t]), d[0]);
      if constexpr (H == 2) s = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[1][t]), d[1], s);
      acc[t] = _mm512_fmadd_ps(s, _mm512_set1_ps(q.d), acc[t]);
      if constexpr (f.has_m) acc[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(q.d * float(int32_t(q.sum[0]) + q.sum[1])), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(out + t * out_stride, rows, acc[t]);
}

// Tokens in tiles of 8, then 4, 2 and 1: each tile re-reads the panel from cache.
template <DType Ty>
HERD_AVX512 void panel_gemm_avx512(int64_t k, const uint8_t* panel, const Q8Block* a, int64_t n_tok, float* out,
                                   int64_t out_stride, int rows) {
  const int64_t nb = k / 32;
  const __mmask16 mask = __mmask16((1u << rows) - 1);
  int64_t t = 0;
  for (; t + 8 <= n_tok; t += 8) panel_tile<Ty, 8>(nb, panel, a + t * nb, out + t * out_stride, out_stride, mask);
  if (t + 4 <= n_tok) panel_tile<Ty, 4>(nb, panel, a + t * nb, out + t * out_stride, out_stride, mask), t += 4;
  if (t + 2 <= n_tok) panel_tile<Ty, 2>(nb, panel, a + t * nb, out + t * out_stride, out_stride, mask), t += 2;
  if (t < n_tok) panel_tile<Ty, 1>(nb, panel, a + t * nb, out + t * out_stride, out_stride, mask);
}

template <DType T>
constexpr PanelKernel avx512_panel = {[](int64_t k) { return panel_bytes_of(panel_format(T), k); },
                                      pack_panel<T>, panel_gemm_avx512<T>};
#endif

}  // namespace

PanelKernel panel_kernel(DType t, CpuLevel level) {
#if defined(__x86_64__)
  if (level == CpuLevel::avx512) switch (t) {
      case DType::q8_0: return avx512_panel<DType::q8_0>;
      case DType::q4_0: return avx512_panel<DType::q4_0>;
      case DType::q4_1: return avx512_panel<DType::q4_1>;
      case DType::q4_k: return avx512_panel<DType::q4_k>;
      case DType::q5_k: return avx512_panel<DType::q5_k>;
      case DType::q6_k: return avx512_panel<DType::q6_k>;
      case DType::int4: return avx512_panel<DType::int4>;
      default: break;
    }
#else
  (void)t, (void)level;
#endif
  return {};
}

}  // namespace herd
