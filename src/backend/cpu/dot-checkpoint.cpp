// FP8 and INT4 weight rows (herd's blocks for quantized safetensors checkpoints, common/quant.h)
// against Q8Block activations, one 32-element weight block per activation block:
//   FP8:  f32 d, 32 E4M3 bytes;                    w = d * e4m3(q)
//   INT4: f16 d, u8 zero z, pad, 16 bytes nibbles; w = d * (q - z)  (nibbles as Q4_0's)
// INT4's zero point meets the activation sums once per block, as Q4_0's -8 does.
#include <cstring>

#include "backend/cpu/cpu-kernels.h"
#include "common/quant.h"

namespace herd {
namespace {

float dot_fp8_scalar(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const Fp8Block*>(w);
  float s = 0.f;
  for (int64_t blk = 0; blk < n / 32; ++blk, ++b, ++a) {
    float bsum = 0.f;
    for (int i = 0; i < 32; ++i) bsum += e4m3_to_f32(b->q[i]) * float(a->q[i]);
    s += b->d * a->d * bsum;
  }
  return s;
}

float dot_int4_scalar(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const Int4Block*>(w);
  float s = 0.f;
  for (int64_t blk = 0; blk < n / 32; ++blk, ++b, ++a) {
    int32_t isum = 0;
    for (int i = 0; i < 16; ++i) isum += int32_t(b->qs[i] & 0xF) * a->q[i] + int32_t(b->qs[i] >> 4) * a->q[i + 16];
    isum -= int32_t(b->z) * (int32_t(a->sum[0]) + a->sum[1]);
    s += f16_to_f32(b->d) * a->d * float(isum);
  }
  return s;
}

}  // namespace

DotQ8Fn dot_q8_checkpoint_kernel(DType t, CpuLevel level) {
  switch (level) {
    case CpuLevel::scalar: return t == DType::fp8 ? dot_fp8_scalar : t == DType::int4 ? dot_int4_scalar : nullptr;
    default: return nullptr;
  }
}

DotQ8x4Fn dot_q8x4_checkpoint_kernel(DType, CpuLevel) { return nullptr; }

}  // namespace herd
