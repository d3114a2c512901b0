// The dense GEMV kernel itself (launched by kernels/dense-gemv.cu); a header of its own so that
// tests/kernels also runs it on an emulated device in CI (see flash-attention-kernel.cuh).
#pragma once

#include <cstring>
#include <type_traits>

#include "kernels/common.cuh"
#include "kernels/dense-gemv.cuh"

namespace herd::kernels {
namespace gemv {

// One warp per weight row; lane l reads 16-byte chunks l, l + 32, ... of the row (8 16-bit weights
// or 16 E4M3 codes each), kUnroll of them
// in flight before any is used, so that a multiprocessor keeps enough bytes on the way to reach the
// memory's bandwidth. x (a few KB a token) comes through L1/L2 and is read by every row.
constexpr int kWarps = 8;  // rows per block
constexpr int kThreads = 32 * kWarps;
constexpr int kUnroll = 4;

struct Parts {
  GemvPart p[kDenseGemvMaxParts];
  int64_t row_end[kDenseGemvMaxParts];  // cumulative rows: part i owns [row_end[i - 1], row_end[i])
  int n;
  int64_t total_rows;
};

// A 16-bit value's bits as f32 (exact): bf16 is the high half of its f32.
template <typename TW>
__device__ __forceinline__ float widen(uint32_t bits16) {
  if constexpr (std::is_same_v<TW, __nv_bfloat16>) {
    const uint32_t b = bits16 << 16;
    float f;
    memcpy(&f, &b, 4);  // register moves on the device
    return f;
  } else {
    __half_raw h;
    h.x = uint16_t(bits16);
    return __half2float(__half(h));
  }
}

// Weight elements in a 16-byte chunk: 8 16-bit values or 16 E4M3 codes.
template <typename TW>
constexpr int kChunkElems = 16 / int(sizeof(TW));

// A 16-byte chunk's elements as f32 (exact), low element first.
template <typename TW>
__device__ __forceinline__ void widen_chunk(const uint4& raw, float* f) {
  if constexpr (std::is_same_v<TW, __nv_fp8_e4m3>) {
    __nv_fp8_e4m3 e[16];
    memcpy(e, &raw, 16);
#pragma unroll
    for (int i = 0; i < 16; ++i) f[i] = float(e[i]);
  } else {
    const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      f[2 * i] = widen<TW>(w[i] & 0xffffu);
      f[2 * i + 1] = widen<TW>(w[i] >> 16);
    }
  }
}

// acc[t] += this lane's share of row w . x[t] (n_vec 16-byte chunks; lanes take chunks lane, lane + 32, ...).
template <typename TW, int NT>
__device__ __forceinline__ void row_dots(const uint4* __restrict__ w, int64_t n_vec, const float* __restrict__ x,
                                         int64_t cols, int lane, float (&acc)[NT]) {
  constexpr int E = kChunkElems<TW>;
  for (int64_t base = lane; base < n_vec; base += 32 * kUnroll) {
    uint4 raw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + 32 * u;
      raw[u] = i < n_vec ? __ldg(w + i) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + 32 * u;
      if (i >= n_vec) break;
      float f[E];
      widen_chunk<TW>(raw[u], f);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        const float4* xp = reinterpret_cast<const float4*>(x + t * cols + i * E);
        float s = acc[t];
#pragma unroll
        for (int q = 0; q < E / 4; ++q) {
          const float4 a = __ldg(xp + q);
          s = fmaf(f[4 * q], a.x, s);
          s = fmaf(f[4 * q + 1], a.y, s);
          s = fmaf(f[4 * q + 2], a.z, s);
          s = fmaf(f[4 * q + 3], a.w, s);
        }
        acc[t] = s;
      }
    }
  }
}

template <typename TW, int NT>
__global__ void __launch_bounds__(kThreads) dense_gemv_kernel(Parts parts, int64_t cols, const float* __restrict__ x) {
  const int lane = threadIdx.x & 31;
  const int64_t r = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (r >= parts.total_rows) return;  // past the last part's rows (warp-uniform)
  // The row's part, by constant indices only (a dynamic index would copy the parameters to local memory).
  GemvPart part = parts.p[0];
  int64_t start = 0;
#pragma unroll
  for (int i = 1; i < kDenseGemvMaxParts; ++i) {
    if (i < parts.n && r >= parts.row_end[i - 1]) {
      part = parts.p[i];
      start = parts.row_end[i - 1];
    }
  }
  const int64_t row = r - start, n_vec = cols / kChunkElems<TW>;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.f;
  row_dots<TW, NT>(static_cast<const uint4*>(part.w) + row * n_vec, n_vec, x, cols, lane, acc);
  const float scale = part.row_scale != nullptr ? part.row_scale[row] : 1.f;
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float s = warp_sum(acc[t]);
    if (lane == 0) part.out[t * part.rows + row] = s * scale;
  }
}

// SwiGLU's two products in one pass: warp r computes row r of gate and of up and writes
// silu(g) * u to gate.out (up.out is not written).
template <typename TW, int NT>
__global__ void __launch_bounds__(kThreads) swiglu_gemv_kernel(GemvPart gate, GemvPart up, int64_t cols,
                                                               const float* __restrict__ x) {
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (row >= gate.rows) return;  // warp-uniform
  const int64_t n_vec = cols / kChunkElems<TW>;
  float acc_g[NT], acc_u[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc_g[t] = acc_u[t] = 0.f;
  row_dots<TW, NT>(static_cast<const uint4*>(gate.w) + row * n_vec, n_vec, x, cols, lane, acc_g);
  row_dots<TW, NT>(static_cast<const uint4*>(up.w) + row * n_vec, n_vec, x, cols, lane, acc_u);
  const float sg = gate.row_scale != nullptr ? gate.row_scale[row] : 1.f;
  const float su = up.row_scale != nullptr ? up.row_scale[row] : 1.f;
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float g = warp_sum(acc_g[t]) * sg, u = warp_sum(acc_u[t]) * su;
    if (lane == 0) gate.out[t * gate.rows + row] = g / (1.0f + expf(-g)) * u;  // as kernels/silu-mul.cu
  }
}

}  // namespace gemv
}  // namespace herd::kernels
