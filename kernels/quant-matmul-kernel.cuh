// The quantized-weight kernels themselves (launched by kernels/quant-matmul.cu): the block decoders
// and the GEMV, widening and embedding kernels built on them. A header of its own so that
// tests/kernels also runs them on an emulated device in CI (see flash-attention-kernel.cuh).
#pragma once

#include <cstring>

#include "kernels/common.cuh"
#include "kernels/quant-matmul.cuh"

namespace herd::kernels {
namespace quant {


struct BlockShape {
  int elems, bytes;
};

__host__ __device__ constexpr BlockShape block_shape(QuantType t) {
  switch (t) {
    case QuantType::q8_0: return {32, 34};
    case QuantType::q4_0: return {32, 18};
    case QuantType::q4_1: return {32, 20};
    case QuantType::q4_k: return {256, 144};
    case QuantType::q5_k: return {256, 176};
    case QuantType::q6_k: return {256, 210};
    case QuantType::fp8: return {32, 36};
    case QuantType::int4: return {32, 20};
  }
  return {1, 0};
}

// Blocks sit at any byte offset a row gives them (Q8_0's are 34 bytes): read byte by byte.
__device__ __forceinline__ float f16_at(const uint8_t* p) {
  __half_raw h;
  h.x = uint16_t(p[0] | (p[1] << 8));
  return __half2float(__half(h));
}
__device__ __forceinline__ float f32_at(const uint8_t* p) {
  const uint32_t bits = uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
  float f;
  memcpy(&f, &bits, 4);  // a register move on the device
  return f;
}

// FP8 E4M3 ("e4m3fn"): the loader has refused NaN codes, so every byte here is finite.
__device__ __forceinline__ float e4m3(uint8_t b) {
  const int exp = (b >> 3) & 0xf, mant = b & 7;
  const float mag = exp == 0 ? ldexpf(float(mant), -9) : ldexpf(float(8 + mant), exp - 10);
  return b & 0x80 ? -mag : mag;
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block (as common/quant.cpp).
__device__ __forceinline__ void scale_min_k4(int j, const uint8_t* s, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// v[0, 32) = elements [32 g, 32 g + 32) of a row of type T (layouts: src/common/quant.h and
// common/quant.cpp, which these follow line for line).
template <QuantType T>
__device__ __forceinline__ void decode32(const uint8_t* row, int64_t g, float* v) {
  constexpr BlockShape bs = block_shape(T);
  if constexpr (bs.elems == 32) {
    const uint8_t* b = row + g * bs.bytes;
    if constexpr (T == QuantType::q8_0) {
      const float d = f16_at(b);
#pragma unroll
      for (int i = 0; i < 32; ++i) v[i] = d * float(int8_t(b[2 + i]));
    } else if constexpr (T == QuantType::fp8) {
      const float d = f32_at(b);
#pragma unroll
      for (int i = 0; i < 32; ++i) v[i] = d * e4m3(b[4 + i]);
    } else {
      // Q4_0: x = d (q - 8); Q4_1: x = d q + m; INT4: x = d (q - z). Nibbles: element i is the low
      // nibble of byte i, element i + 16 its high nibble.
      const float d = f16_at(b);
      const uint8_t* q = b + (T == QuantType::q4_0 ? 2 : 4);
#pragma unroll
      for (int i = 0; i < 32; ++i) {
        const int n = i < 16 ? q[i] & 0xF : q[i - 16] >> 4;
        if constexpr (T == QuantType::q4_1) v[i] = d * float(n) + f16_at(b + 2);
        else v[i] = d * float(n - (T == QuantType::q4_0 ? 8 : int(b[2])));
      }
    }
  } else {
    const uint8_t* b = row + (g / 8) * bs.bytes;
    const int j = int(g % 8);  // the 32-element group within the 256-element block
    if constexpr (T == QuantType::q6_k) {
      // ql[128], qh[64], int8 scales[16] (one per 16 elements), f16 d; halves of 128 elements.
      const int half = j / 4, r = j % 4;
      const uint8_t* ql = b + 64 * half + (r & 1) * 32;
      const uint8_t* qh = b + 128 + 32 * half;
      const int lo_shift = (r >> 1) * 4, hi_shift = 2 * r;
      const float d = f16_at(b + 208);
      const float d0 = d * float(int8_t(b[192 + 2 * j])), d1 = d * float(int8_t(b[192 + 2 * j + 1]));
#pragma unroll
      for (int l = 0; l < 32; ++l) {
        const int q = int(((ql[l] >> lo_shift) & 0xF) | (((qh[l] >> hi_shift) & 3) << 4)) - 32;
        v[l] = (l < 16 ? d0 : d1) * float(q);
      }
    } else {
      // Q4_K: f16 d, f16 dmin, 12 bytes of scales, 128 bytes of nibbles (each 64 elements share 32
      // bytes: low nibbles, then high); Q5_K adds 32 bytes qh (bit j of qh[l]: group j's fifth bit).
      int sc, mn;
      scale_min_k4(j, b + 4, &sc, &mn);
      const float d = f16_at(b) * float(sc), m = f16_at(b + 2) * float(mn);
      const bool five = T == QuantType::q5_k;
      const uint8_t* qh = b + 16;
      const uint8_t* q = b + (five ? 48 : 16) + 32 * (j / 2);
      const int shift = 4 * (j % 2);
#pragma unroll
      for (int l = 0; l < 32; ++l) {
        const int hi = five ? ((qh[l] >> j) & 1) << 4 : 0;
        v[l] = d * float(((q[l] >> shift) & 0xF) | hi) - m;
      }
    }
  }
}

constexpr int kGemvWarps = 8;  // rows per block of 256 threads

template <QuantType T>
__global__ void gemv_kernel(const uint8_t* __restrict__ w, int64_t rows, int64_t cols, int64_t row_bytes,
                            const float* __restrict__ x, float* __restrict__ out, int n_tokens) {
  const int lane = threadIdx.x % 32;
  const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (r >= rows) return;
  const uint8_t* row = w + r * row_bytes;
  float acc[kQuantGemvMaxTokens] = {};
  // Lane l takes groups l, l + 32, ...: the warp reads consecutive blocks.
  for (int64_t g = lane; g < cols / 32; g += 32) {
    float v[32];
    decode32<T>(row, g, v);
#pragma unroll
    for (int t = 0; t < kQuantGemvMaxTokens; ++t) {
      if (t >= n_tokens) break;
      const float4* xp = reinterpret_cast<const float4*>(x + t * cols + g * 32);
      float s = 0.f;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const float4 q = xp[i];
        s += v[4 * i] * q.x + v[4 * i + 1] * q.y + v[4 * i + 2] * q.z + v[4 * i + 3] * q.w;
      }
      acc[t] += s;
    }
  }
#pragma unroll
  for (int t = 0; t < kQuantGemvMaxTokens; ++t) {
    if (t >= n_tokens) break;
    float s = acc[t];
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) out[t * rows + r] = s;
  }
}

template <QuantType T>
__global__ void dequantize_kernel(const uint8_t* __restrict__ w, int64_t rows, int64_t cols, int64_t row_bytes,
                                  __nv_bfloat16* __restrict__ out) {
  const int64_t groups = cols / 32, i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * groups) return;
  const int64_t r = i / groups, g = i % groups;
  float v[32];
  decode32<T>(w + r * row_bytes, g, v);
  __nv_bfloat16* o = out + r * cols + g * 32;
#pragma unroll
  for (int k = 0; k < 32; ++k) o[k] = __float2bfloat16_rn(v[k]);
}

template <QuantType T>
__global__ void embed_kernel(const uint8_t* __restrict__ table, int64_t n_vocab, int64_t cols, int64_t row_bytes,
                             const int32_t* __restrict__ ids, float* __restrict__ out) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  float* o = out + t * cols;
  if (id == -1 || id < 0 || id >= n_vocab) {  // -1: a row another tensor-parallel rank holds
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) o[i] = id == -1 ? 0.0f : NAN;
    return;
  }
  for (int64_t g = threadIdx.x; g < cols / 32; g += blockDim.x) {
    float v[32];
    decode32<T>(table + int64_t(id) * row_bytes, g, v);
#pragma unroll
    for (int k = 0; k < 32; ++k) o[g * 32 + k] = v[k];
  }
}

}  // namespace quant
}  // namespace herd::kernels
