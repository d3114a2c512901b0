#include "model/quantize-blocks.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "common/check.h"

namespace herd {
namespace {

// A float rounded to type t (round to nearest even), as torch stores the result of an op in t.
float round_to(DType t, float v) {
  switch (t) {
    case DType::bf16: return bf16_to_f32(f32_to_bf16(v));
    case DType::f16: return f16_to_f32(f32_to_f16(v));
    default: return v;
  }
}

// torch.finfo(t).eps: compressed-tensors' scale for an all-zero row.
float machine_eps(DType t) {
  switch (t) {
    case DType::bf16: return 0.0078125f;      // 2^-7
    case DType::f16: return 0.0009765625f;    // 2^-10
    default: return 1.1920928955078125e-7f;  // 2^-23
  }
}

// Round half to even, as torch.round does (the default floating-point rounding mode).
float round_even(float v) { return std::nearbyint(v); }

uint8_t clamp_code(float v, float lo, float hi) { return uint8_t(std::min(hi, std::max(lo, v))); }

// An F16 scale for a 4-bit group: the smallest subnormal rather than zero (whose reciprocal would
// turn every code into a clamp), and an error for a value F16 cannot hold.
uint16_t f16_scale(float s) {
  HERD_REQUIRE(std::isfinite(s) && s < 65504.f, "a group's scale ", s, " is too large for an F16 scale");
  const uint16_t h = f32_to_f16(s);
  return h == 0 ? uint16_t(1) : h;
}

void put_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

// ggml's nearest_int: round half to even through the float adder (|v| < 2^22).
int nearest_int(float v) {
  const float shifted = v + 12582912.f;  // 1.5 * 2^23
  int32_t i;
  std::memcpy(&i, &shifted, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// --- GGML blocks, in the layouts of ggml-common.h

// Q8_0: f16 d = amax / 127, then 32 int8 round(x / d) (half away from zero).
void q8_0_block(const float* x, uint8_t* b) {
  float amax = 0.f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.f;
  const float id = d != 0.f ? 1.0f / d : 0.0f;
  put_f16(b, d);
  for (int j = 0; j < 32; ++j) b[2 + j] = uint8_t(int8_t(std::round(x[j] * id)));
}

// Q4_0: d = m / -8 where m is the element of largest magnitude (the first one, with its sign);
// codes trunc(x / d + 8.5) capped at 15; element j in the low nibble of byte j, j + 16 in the high.
void q4_0_block(const float* x, uint8_t* b) {
  float amax = 0.f, m = 0.f;
  for (int j = 0; j < 32; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      m = x[j];
    }
  const float d = m / -8.f;
  const float id = d != 0.f ? 1.0f / d : 0.0f;
  put_f16(b, d);
  for (int j = 0; j < 16; ++j) {
    const float v0 = x[j] * id, v1 = x[j + 16] * id;
    const int c0 = std::min(15, int(v0 + 8.5f)), c1 = std::min(15, int(v1 + 8.5f));
    b[2 + j] = uint8_t(c0 | (c1 << 4));
  }
}

// Q4_1: d = (max - min) / 15 and m = min as f16; codes trunc((x - min) / d + 0.5) capped at 15, from
// the unrounded d and min.
void q4_1_block(const float* x, uint8_t* b) {
  float lo = FLT_MAX, hi = -FLT_MAX;
  for (int j = 0; j < 32; ++j) {
    lo = std::min(lo, x[j]);
    hi = std::max(hi, x[j]);
  }
  const float d = (hi - lo) / 15.f;
  const float id = d != 0.f ? 1.0f / d : 0.0f;
  put_f16(b, d);
  put_f16(b + 2, lo);
  for (int j = 0; j < 16; ++j) {
    const float v0 = (x[j] - lo) * id, v1 = (x[j + 16] - lo) * id;
    const int c0 = std::min(15, int(v0 + 0.5f)), c1 = std::min(15, int(v1 + 0.5f));
    b[4 + j] = uint8_t(c0 | (c1 << 4));
  }
}

// ggml's make_qx_quants for Q6_K's sub-blocks (16 elements, nmax 32, weights x^2): the scale that
// minimises the weighted error among the grid through the largest element and 18 nearby grids.
// L receives the codes of the chosen grid, offset by nmax.
float best_grid_scale(const float* x, int8_t* L) {
  constexpr int n = 16, nmax = 32;
  float amax = 0.f, m = 0.f;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      m = x[i];
    }
  if (amax < 1e-15f) {
    std::fill(L, L + n, int8_t(0));
    return 0.f;
  }
  auto code = [](float iscale, float v) { return std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * v))); };
  float iscale = float(-nmax) / m;
  float sumlx = 0.f, suml2 = 0.f;
  for (int i = 0; i < n; ++i) {
    const int l = code(iscale, x[i]);
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  float scale = suml2 != 0.f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(step)) / m;
    sumlx = suml2 = 0.f;
    for (int i = 0; i < n; ++i) {
      const int l = code(iscale, x[i]);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
    if (suml2 > 0.f && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + code(iscale, x[i]));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q6_K (256 elements): 16 sub-block scales quantized to int8 against the super-block's f16 d, then
// codes round(x / (d * scale)) + 32 in 6 bits: ql[128] (low 4 bits), qh[64] (top 2), scales[16], d.
void q6_k_block(const float* x, uint8_t* b) {
  int8_t L[256];
  float scales[16];
  float max_scale = 0.f, max_abs_scale = 0.f;
  for (int s = 0; s < 16; ++s) {
    scales[s] = best_grid_scale(x + 16 * s, L + 16 * s);
    if (std::fabs(scales[s]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[s]);
      max_scale = scales[s];
    }
  }
  uint8_t* ql = b;
  uint8_t* qh = b + 128;
  auto* sc = reinterpret_cast<int8_t*>(b + 192);
  if (max_abs_scale < 1e-15f) {
    std::memset(b, 0, 210);
    return;
  }
  const float iscale = -128.f / max_scale;
  put_f16(b + 208, 1.f / iscale);
  for (int s = 0; s < 16; ++s) sc[s] = int8_t(std::min(127, nearest_int(iscale * scales[s])));
  uint16_t dh;
  std::memcpy(&dh, b + 208, 2);
  const float d_super = f16_to_f32(dh);
  for (int s = 0; s < 16; ++s) {
    const float d = d_super * float(sc[s]);
    if (d == 0.f) continue;
    for (int i = 0; i < 16; ++i) {
      const int l = std::max(-32, std::min(31, nearest_int(x[16 * s + i] / d)));
      L[16 * s + i] = int8_t(l + 32);
    }
  }
  for (int half = 0; half < 2; ++half) {
    const int8_t* Lh = L + 128 * half;
    uint8_t* qlh = ql + 64 * half;
    uint8_t* qhh = qh + 32 * half;
    for (int l = 0; l < 32; ++l) {
      const int q1 = Lh[l], q2 = Lh[l + 32], q3 = Lh[l + 64], q4 = Lh[l + 96];
      qlh[l] = uint8_t((q1 & 0xF) | ((q3 & 0xF) << 4));
      qlh[l + 32] = uint8_t((q2 & 0xF) | ((q4 & 0xF) << 4));
      qhh[l] = uint8_t((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  }
}

// make_qkx2_quants' search parameters in quantize_row_q4_K_ref and quantize_row_q5_K_ref: the
// codes' range 0..nmax and the nstep + 1 grids tried beside the one through the range, from
// (nmax + rmin) / range in steps of 0.1 / range.
struct MinGrid {
  int nmax;
  float rmin;
  int nstep;
};
constexpr MinGrid kQ4KGrid{15, -1.f, 20}, kQ5KGrid{31, -0.5f, 15};

// ggml's make_qkx2_quants for the 32-element sub-blocks of Q4_K and Q5_K (weights w): an asymmetric
// grid (scale and min) chosen by least weighted squared error among the grid through the range and
// the nearby grids g names, each refit by weighted least squares. L receives the chosen codes;
// *neg_min the min, negated (never negative).
float best_grid_scale_min(const float* x, const float* w, const MinGrid& g, uint8_t* L, float* neg_min) {
  constexpr int n = 32;
  constexpr float rdelta = 0.1f;
  // min moves to each better fit's min, and the grids after it are laid from there, as in ggml.
  float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, uint8_t(0));
    *neg_min = -min;
    return 0.f;
  }
  auto code = [&](float iscale, float v) { return std::max(0, std::min(g.nmax, nearest_int(iscale * (v - min)))); };
  float iscale = float(g.nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = uint8_t(code(iscale, x[i]));
    const float diff = scale * float(L[i]) + min - x[i];
    best_error += w[i] * (diff * diff);
  }
  uint8_t Laux[n];
  for (int step = 0; step <= g.nstep; ++step) {
    iscale = (g.rmin + rdelta * float(step) + float(g.nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = code(iscale, x[i]);
      Laux[i] = uint8_t(l);
      sum_l += w[i] * float(l);
      sum_l2 += w[i] * float(l) * float(l);
      sum_xl += w[i] * float(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        const float diff = this_scale * float(Laux[i]) + this_min - x[i];
        cur_error += w[i] * (diff * diff);
      }
      if (cur_error < best_error) {
        std::copy(Laux, Laux + n, L);
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *neg_min = -min;
  return scale;
}

// What Q4_K and Q5_K blocks (256 elements) share: 8 sub-blocks of 32, each with a 6-bit scale and
// min against the super-block's f16 d and dmin, written to b as d, dmin, scales[12] (packed as
// scale_min_k4 reads them); L receives the codes round((x + dmin * m) / (d * sc)) in 0..g.nmax.
void scale_min_block(const float* x, const MinGrid& g, uint8_t* b, uint8_t* L) {
  float scales[8], mins[8], w[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = best_grid_scale_min(x + 32 * j, w, g, L + 32 * j, &mins[j]);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t* sc = b + 4;
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
    const uint8_t lm = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
    if (j < 4) {
      sc[j] = ls;
      sc[j + 4] = lm;
    } else {
      sc[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
      sc[j - 4] = uint8_t(sc[j - 4] | ((ls >> 4) << 6));
      sc[j] = uint8_t(sc[j] | ((lm >> 4) << 6));
    }
  }
  put_f16(b, max_scale / 63.f);
  put_f16(b + 2, max_min / 63.f);
  uint16_t h;
  std::memcpy(&h, b, 2);
  const float d_super = f16_to_f32(h);
  std::memcpy(&h, b + 2, 2);
  const float dmin_super = f16_to_f32(h);
  for (int j = 0; j < 8; ++j) {
    // scale_min_k4 (common/quant.cpp's reading of the packed bytes)
    const uint8_t s6 = j < 4 ? uint8_t(sc[j] & 63) : uint8_t((sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4));
    const uint8_t m6 = j < 4 ? uint8_t(sc[j + 4] & 63) : uint8_t((sc[j + 4] >> 4) | ((sc[j] >> 6) << 4));
    const float d = d_super * float(s6);
    if (d == 0.f) continue;
    const float dm = dmin_super * float(m6);
    for (int i = 0; i < 32; ++i)
      L[32 * j + i] = uint8_t(std::max(0, std::min(g.nmax, nearest_int((x[32 * j + i] + dm) / d))));
  }
}

// The low 4 bits of Q4_K's and Q5_K's codes, 128 bytes: elements j and j + 32 of each 64 share a byte.
void pack_low_nibbles(const uint8_t* L, uint8_t* q) {
  for (int j = 0; j < 256; j += 64, q += 32)
    for (int l = 0; l < 32; ++l) q[l] = uint8_t((L[j + l] & 0xF) | ((L[j + l + 32] & 0xF) << 4));
}

// Q4_K: d, dmin, scales[12], then the 4-bit codes qs[128].
void q4_k_block(const float* x, uint8_t* b) {
  uint8_t L[256];
  scale_min_block(x, kQ4KGrid, b, L);
  pack_low_nibbles(L, b + 16);
}

// Q5_K: d, dmin, scales[12], qh[32], qs[128]: the codes' low 4 bits as in Q4_K, and their fifth bits
// in qh, bit 2k (element l of the k-th 64) and 2k + 1 (element l + 32) of qh[l].
void q5_k_block(const float* x, uint8_t* b) {
  uint8_t L[256];
  scale_min_block(x, kQ5KGrid, b, L);
  uint8_t* qh = b + 16;
  std::memset(qh, 0, 32);
  for (int k = 0; k < 4; ++k)
    for (int l = 0; l < 32; ++l)
      qh[l] = uint8_t(qh[l] | ((L[64 * k + l] >> 4) << (2 * k)) | ((L[64 * k + l + 32] >> 4) << (2 * k + 1)));
  pack_low_nibbles(L, b + 48);
}

}  // namespace

float quantize_fp8_row(DType t, const float* x, int64_t n, uint8_t* q) {
  float lo = 0.f, hi = 0.f;  // the observer's min and max, widened to include 0
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  float scale = round_to(t, std::max(-lo, hi) / 448.f);
  if (scale == 0.f) scale = machine_eps(t);
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::min(448.f, std::max(-448.f, round_to(t, x[i] / scale)));
    q[i] = f32_to_e4m3(v);
  }
  return scale;
}

Int4Group quantize_awq_group(const float* x, int64_t n, uint8_t* q) {
  float lo = x[0], hi = x[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  Int4Group g;
  g.scale = f16_scale(std::max(hi - lo, 1e-5f) / 15.f);
  const float s = f16_to_f32(g.scale);
  const float zero = std::min(15.f, std::max(0.f, round_even(-lo / s)));
  g.zero = uint8_t(zero);
  for (int64_t i = 0; i < n; ++i) q[i] = clamp_code(round_even(x[i] / s) + zero, 0.f, 15.f);
  return g;
}

Int4Group quantize_gptq_group(const float* x, int64_t n, uint8_t* q) {
  float lo = 0.f, hi = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  hi = std::max(-lo, hi);
  if (lo < 0.f) lo = -hi;
  if (lo == 0.f && hi == 0.f) lo = -1.f, hi = 1.f;
  Int4Group g;
  g.scale = f16_scale((hi - lo) / 15.f);
  g.zero = 8;
  const float s = f16_to_f32(g.scale);
  for (int64_t i = 0; i < n; ++i) q[i] = clamp_code(round_even(x[i] / s) + 8.f, 0.f, 15.f);
  return g;
}

void quantize_ggml_row(DType t, const float* x, int64_t n, uint8_t* dst) {
  const DTypeBlock blk = dtype_block(t);
  HERD_CHECK(n % blk.elems == 0, n, " elements are not whole blocks of ", dtype_name(t));
  for (int64_t b = 0; b < n / blk.elems; ++b) {
    const float* xb = x + b * blk.elems;
    uint8_t* db = dst + b * int64_t(blk.bytes);
    switch (t) {
      case DType::q8_0: q8_0_block(xb, db); break;
      case DType::q4_0: q4_0_block(xb, db); break;
      case DType::q4_1: q4_1_block(xb, db); break;
      case DType::q4_k: q4_k_block(xb, db); break;
      case DType::q5_k: q5_k_block(xb, db); break;
      case DType::q6_k: q6_k_block(xb, db); break;
      default: HERD_CHECK(false, "no quantizer for ", dtype_name(t));
    }
  }
}

}  // namespace herd
