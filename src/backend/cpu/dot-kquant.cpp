// Q4_K, Q5_K and Q6_K weight rows against Q8Block activations. A 256-element weight block meets
// eight activation blocks; each of its groups has its own scale (and min), so a group's integer
// dot product is scaled on its own (block layouts: common/quant.h, unpack_k).
//   Q4_K, Q5_K: 8 groups of 32, w = d*scale*q - dmin*min (q in [0, 16) or [0, 32)); the min term
//               is dmin*min*a.d*(sum of the activation block's quants).
//   Q6_K:       16 groups of 16, w = d*scale*(q - 32), scale a signed int8.
#include "backend/cpu/cpu-kernels.h"
#include "common/quant.h"

namespace herd {
namespace {

float dot_k_scalar(DType t, int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  const size_t block_bytes = dtype_block(t).bytes;
  float s = 0.f;
  for (int64_t blk = 0; blk < n / 256; ++blk, b += block_bytes, a += 8) {
    const KBlock k = unpack_k(t, b);
    for (int g = 0; g < 256 / k.group; ++g) {
      const Q8Block& ab = a[g * k.group / 32];
      const int off = g * k.group % 32;  // 0, or 16 for Q6_K's odd groups
      int32_t isum = 0;
      for (int i = 0; i < k.group; ++i) isum += int32_t(k.q[g * k.group + i]) * ab.q[off + i];
      s += k.d * float(k.scale[g]) * ab.d * float(isum);
      if (k.group == 32) s -= k.dmin * float(k.min[g]) * ab.d * float(int32_t(ab.sum[0]) + ab.sum[1]);
    }
  }
  return s;
}

float dot_q4_k_scalar(int64_t n, const void* w, const Q8Block* a) { return dot_k_scalar(DType::q4_k, n, w, a); }
float dot_q5_k_scalar(int64_t n, const void* w, const Q8Block* a) { return dot_k_scalar(DType::q5_k, n, w, a); }
float dot_q6_k_scalar(int64_t n, const void* w, const Q8Block* a) { return dot_k_scalar(DType::q6_k, n, w, a); }

}  // namespace

DotQ8Fn dot_q8_kquant_kernel(DType t, CpuLevel level) {
  if (level != CpuLevel::scalar) return nullptr;
  switch (t) {
    case DType::q4_k: return dot_q4_k_scalar;
    case DType::q5_k: return dot_q5_k_scalar;
    case DType::q6_k: return dot_q6_k_scalar;
    default: return nullptr;
  }
}

}  // namespace herd
