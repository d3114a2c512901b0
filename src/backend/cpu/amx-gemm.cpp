// F16 and BF16 weights on Intel AMX tiles (Sapphire Rapids and later): TDPBF16PS multiplies a
// 16 x 32 BF16 tile with a 32 x 16 one into 16 x 16 f32 sums, 8192 multiply-adds an instruction,
// where an AVX-512 FMA makes 16. Both operands must be BF16, so values BF16 does not hold are split
// into BF16 parts whose sum is the value exactly:
//  - an F16 weight w is hi + lo with hi its top 8 significand bits (truncated) and lo = w - hi,
//    the 3 bits hi lacks, both exact in BF16; BF16 weights are hi alone;
//  - an f32 activation x is xh + xm + xl the same way, 8 of its 24 significand bits each.
// w * x is then hi*xh + hi*xm + hi*xl + lo*xh + lo*xm: five tile products for F16, three for BF16,
// each product exact in f32 and summed in f32. The one term left out, lo*xl, is under 2^-26 of
// |w x|, below f32's own rounding. So the products are f32 products, summed in another order than
// the FMA kernels': equal to them within f32 rounding, not bit for bit.
//
// Layouts. A tile row is 64 bytes. A weight tile (A) is a panel of 16 weight rows by one chunk of 32
// columns, as the rows are stored, converted to its BF16 parts (hi, and lo for F16) a block of 16
// chunks at a time into a per-thread scratch. An activation tile (B) is 16 rows of column pairs:
// row p holds, for each of 16 tokens t, x[t][2p] and x[t][2p + 1] (amx_prepare_activations writes
// the three parts of every token tile and chunk once per product). A sum tile (C) is 16 weight rows
// by 16 tokens; four of them take four panels at a time, and are stored between column blocks.
//
// Every sum of one token and one row runs over the chunks in column order, each chunk's products in
// one order, whatever the other tokens of the product, the rows beside it or the thread: a token's
// result does not depend on them.
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "backend/cpu/amx-gemm.h"
#include "backend/cpu/simd-x86.h"
#include "common/check.h"

namespace herd {

#if defined(__x86_64__)
#define HERD_AMX __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16")))

namespace {

// The palette-1 tile configuration: 8 tiles of 16 rows by 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

bool os_grants_tiles() {
  // Linux hands out the 8 KB of tile state only to processes that ask (arch_prctl, kernel 5.16+).
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
}

// 32 floats (a0: the first 16, a1: the next) as BF16 at `out`, rounded to nearest even; a0 and a1
// become what that rounding left over (exact in f32).
HERD_AMX inline void split_off(__m512& a0, __m512& a1, uint16_t* out) {
  const __m512i h = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(a1, a0));
  _mm512_storeu_si512(out, h);
  a0 = _mm512_sub_ps(a0, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(h)), 16)));
  a1 = _mm512_sub_ps(a1, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h, 1)), 16)));
}

// A per-thread scratch, grown to the largest size asked for.
template <typename T, int kSlot>
T* thread_scratch(size_t elems) {
  thread_local std::unique_ptr<T, decltype(&std::free)> buf(nullptr, std::free);
  thread_local size_t cap = 0;
  if (elems > cap) {
    buf.reset(static_cast<T*>(std::aligned_alloc(64, (elems * sizeof(T) + 63) / 64 * 64)));
    HERD_CHECK(buf != nullptr, "out of host memory for AMX tiles");
    cap = elems;
  }
  return buf.get();
}

// Chunks [c0, c0 + kc) (32 columns each) of `rows` (at most 16) weight rows as the A tiles' BF16
// parts: the chunk's hi tile at parts + c * chunk_stride, its lo tile (F16) 512 values after it.
// Rows past the weight's end are zeros, whose sums are never stored. Row by row, so that each row's
// columns are read in one sequential run.
HERD_AMX void convert_rows(DType t, const uint8_t* w, size_t row_bytes, int rows, int64_t c0, int64_t kc,
                           uint16_t* parts, size_t chunk_stride) {
  const __m512i mask = _mm512_set1_epi32(int(0xffff0000u));
  for (int r = 0; r < 16; ++r) {
    const uint8_t* src = w + size_t(r) * row_bytes + size_t(c0) * 64;
    for (int64_t c = 0; c < kc; ++c, src += 64) {
      uint16_t* h = parts + size_t(c) * chunk_stride + size_t(r) * 32;
      uint16_t* l = h + 512;
      if (r >= rows) {
        std::memset(h, 0, 64);
        if (t == DType::f16) std::memset(l, 0, 64);
      } else if (t == DType::bf16) {
        std::memcpy(h, src, 64);
      } else {
        // hi: the top 16 bits of each f32 (truncation: already BF16, so the pack below is exact);
        // lo: the rest, at most 3 significant bits, exact in BF16 too.
        const __m512i raw = _mm512_loadu_si512(src);
        const __m512 a0 = _mm512_cvtph_ps(_mm512_castsi512_si256(raw));
        const __m512 a1 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(raw, 1));
        const __m512 h0 = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a0), mask));
        const __m512 h1 = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a1), mask));
        _mm512_storeu_si512(h, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(h1, h0)));
        _mm512_storeu_si512(l, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(_mm512_sub_ps(a1, h1), _mm512_sub_ps(a0, h0))));
      }
    }
  }
}

// Columns go in blocks of this many chunks of 32: the weight parts of a block (up to 4 panels x 16
// chunks x 2 KB) and one token tile's activation parts (16 x 3 KB) stay in L2 while every token
// tile and panel meet.
constexpr int64_t kBlockChunks = 16;

// The products of one chunk (A parts at a, B parts at xb) for the panels P < n_panels, each into
// its accumulator tile P. Tile numbers are instruction immediates, hence the macros.
#define HERD_AMX_PANEL_F16(P)                         \
  if ((P) < n_panels) {                               \
    _tile_loadd(4, a + size_t(P) * kPanelStride, 64); \
    _tile_loadd(5, a + size_t(P) * kPanelStride + 512, 64); \
    _tile_dpbf16ps(P, 4, 6);                          \
    _tile_dpbf16ps(P, 4, 7);                          \
    _tile_dpbf16ps(P, 5, 6);                          \
    _tile_dpbf16ps(P, 5, 7);                          \
  }
#define HERD_AMX_PANEL_XL(P)                          \
  if ((P) < n_panels) {                               \
    _tile_loadd(4, a + size_t(P) * kPanelStride, 64); \
    _tile_dpbf16ps(P, 4, 6);                          \
  }
#define HERD_AMX_PANEL_BF16(P)                        \
  if ((P) < n_panels) {                               \
    _tile_loadd(4, a + size_t(P) * kPanelStride, 64); \
    _tile_dpbf16ps(P, 4, 5);                          \
    _tile_dpbf16ps(P, 4, 6);                          \
    _tile_dpbf16ps(P, 4, 7);                          \
  }
#define HERD_AMX_EACH_PANEL(M) M(0) M(1) M(2) M(3)

HERD_AMX void gemm_rows(DType t, int64_t k, const uint8_t* w, size_t row_bytes, int rows, const uint16_t* x,
                        int64_t n_tok, float* out, int64_t out_stride) {
  static const TileConfig config = [] {
    TileConfig c;
    for (int i = 0; i < 8; ++i) c.rows[i] = 16, c.colsb[i] = 64;
    return c;
  }();
  _tile_loadconfig(&config);
  const int64_t nb = k / 32, n_tiles = (n_tok + 15) / 16;
  const int all_panels = (rows + 15) / 16;
  const bool has_lo = t == DType::f16;
  // The block's weight parts, [chunk][panel][hi, lo][512], and the sums so far, [panel][tile][256].
  constexpr size_t kPanelStride = 1024;
  const size_t chunk_stride = size_t(all_panels) * kPanelStride, panel_sums = size_t(n_tiles) * 256;
  uint16_t* parts = thread_scratch<uint16_t, 0>(size_t(kBlockChunks) * chunk_stride);
  float* sums = thread_scratch<float, 1>(size_t(all_panels) * panel_sums);
  for (int64_t kb = 0; kb < nb; kb += kBlockChunks) {
    const int64_t kc = std::min(kBlockChunks, nb - kb);
    for (int p = 0; p < all_panels; ++p)
      convert_rows(t, w + size_t(p) * 16 * row_bytes, row_bytes, std::min(16, rows - 16 * p), kb, kc,
                   parts + size_t(p) * kPanelStride, chunk_stride);
    for (int64_t tile = 0; tile < n_tiles; ++tile)
      // Four panels at a time, one accumulator tile each; the token tile's activation parts of the
      // block serve every group of four from cache.
      for (int p0 = 0; p0 < all_panels; p0 += 4) {
        const int n_panels = std::min(4, all_panels - p0);
        float* s = sums + size_t(p0) * panel_sums + size_t(tile) * 256;
        // Each panel's sums of this token tile continue from the previous block's, stored exactly.
#define HERD_AMX_LOAD_SUMS(P) \
  if ((P) < n_panels) {       \
    if (kb == 0) _tile_zero(P); \
    else _tile_loadd(P, s + (P) * panel_sums, 64); \
  }
        HERD_AMX_EACH_PANEL(HERD_AMX_LOAD_SUMS)
#undef HERD_AMX_LOAD_SUMS
        for (int64_t c = 0; c < kc; ++c) {
          const uint16_t* xb = x + (size_t(tile * nb + kb + c) * 3) * 512;  // xh, xm, xl
          const uint16_t* a = parts + size_t(c) * chunk_stride + size_t(p0) * kPanelStride;
          if (has_lo) {
            _tile_loadd(6, xb, 64);
            _tile_loadd(7, xb + 512, 64);
            HERD_AMX_EACH_PANEL(HERD_AMX_PANEL_F16)
            _tile_loadd(6, xb + 1024, 64);
            HERD_AMX_EACH_PANEL(HERD_AMX_PANEL_XL)
          } else {
            _tile_loadd(5, xb, 64);
            _tile_loadd(6, xb + 512, 64);
            _tile_loadd(7, xb + 1024, 64);
            HERD_AMX_EACH_PANEL(HERD_AMX_PANEL_BF16)
          }
        }
#define HERD_AMX_STORE_SUMS(P) \
  if ((P) < n_panels) _tile_stored(P, s + (P) * panel_sums, 64);
        HERD_AMX_EACH_PANEL(HERD_AMX_STORE_SUMS)
#undef HERD_AMX_STORE_SUMS
      }
  }
  for (int p = 0; p < all_panels; ++p)
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
      const float* s = sums + size_t(p) * panel_sums + size_t(tile) * 256;
      for (int64_t tk = 0; tk < std::min<int64_t>(16, n_tok - tile * 16); ++tk)
        for (int r = 0; r < std::min(16, rows - 16 * p); ++r) out[(tile * 16 + tk) * out_stride + 16 * p + r] = s[r * 16 + tk];
    }
}
#undef HERD_AMX_PANEL_F16
#undef HERD_AMX_PANEL_XL
#undef HERD_AMX_PANEL_BF16
#undef HERD_AMX_EACH_PANEL

HERD_AMX void prepare(const float* x, int64_t k, int64_t n_tok, int64_t tile, uint16_t* out) {
  const int64_t nb = k / 32;
  // Row p of a chunk's tile holds token t's pair (2p, 2p + 1) at 32-bit column t.
  const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                          _mm512_set1_epi32(16));
  for (int64_t c = 0; c < nb; ++c) {
    uint16_t* tiles = out + (size_t(tile * nb + c) * 3) * 512;  // xh, xm, xl
    for (int64_t tk = 0; tk < 16; ++tk) {
      const int64_t tok = tile * 16 + tk;
      __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
      if (tok < n_tok) a0 = _mm512_loadu_ps(x + tok * k + c * 32), a1 = _mm512_loadu_ps(x + tok * k + c * 32 + 16);
      alignas(64) uint16_t part[3][32];
      for (auto& p : part) split_off(a0, a1, p);
      // 16 pairs (32-bit units) to rows 0..15 at column tk of each part's tile.
      for (int i = 0; i < 3; ++i)
        _mm512_i32scatter_epi32(reinterpret_cast<int*>(tiles + i * 512) + tk, rows, _mm512_load_si512(part[i]), 4);
    }
  }
}

}  // namespace

bool cpu_has_amx() {
  static const bool ok = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512bf16")) return false;
    unsigned a, b, c, d;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    const bool tile = (d >> 24) & 1, bf16 = (d >> 22) & 1;  // CPUID.(7,0):EDX AMX-TILE, AMX-BF16
    return tile && bf16 && os_grants_tiles();
  }();
  return ok;
}

bool amx_requested() {
  const char* env = std::getenv("HERD_CPU_AMX");
  if (env == nullptr || *env == '\0') return false;
  const std::string_view v(env);
  HERD_REQUIRE(v == "on" || v == "off", "HERD_CPU_AMX=", v, ": expected on or off");
  return v == "on";
}

void amx_prepare_activations(const float* x, int64_t k, int64_t n_tok, int64_t tile, uint16_t* out) {
  prepare(x, k, n_tok, tile, out);
}

void amx_gemm_rows(DType t, int64_t k, const void* w, size_t row_bytes, int rows, const uint16_t* x, int64_t n_tok,
                   float* out, int64_t out_stride) {
  HERD_CHECK(rows >= 1 && rows <= kAmxRows && k % 32 == 0 && (t == DType::f16 || t == DType::bf16));
  gemm_rows(t, k, static_cast<const uint8_t*>(w), row_bytes, rows, x, n_tok, out, out_stride);
}

#else

bool cpu_has_amx() { return false; }
bool amx_requested() { return false; }
void amx_prepare_activations(const float*, int64_t, int64_t, int64_t, uint16_t*) {
  HERD_CHECK(false, "AMX on a non-x86 build");
}
void amx_gemm_rows(DType, int64_t, const void*, size_t, int, const uint16_t*, int64_t, float*, int64_t) {
  HERD_CHECK(false, "AMX on a non-x86 build");
}

#endif

}  // namespace herd
