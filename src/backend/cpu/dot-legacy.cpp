// Q8_0, Q4_0 and Q4_1 weight rows against Q8Block activations. One weight block (32 elements)
// meets one activation block: the integer dot product of the quants, times both scales.
//   Q8_0: f16 d, 32 int8 q;             w = d * q
//   Q4_0: f16 d, 16 bytes of nibbles;   w = d * (q - 8)   (element i: low nibble of byte i,
//                                                          element i + 16: its high nibble)
//   Q4_1: f16 d, f16 m, 16 bytes;       w = d * q + m
#include <cstring>

#include "backend/cpu/cpu-kernels.h"

namespace herd {
namespace {

float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

float dot_q8_0_scalar(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  float s = 0.f;
  for (int64_t blk = 0; blk < n / 32; ++blk, b += 34, ++a) {
    const auto* q = reinterpret_cast<const int8_t*>(b + 2);
    int32_t isum = 0;
    for (int i = 0; i < 32; ++i) isum += int32_t(q[i]) * a->q[i];
    s += f16_at(b) * a->d * float(isum);
  }
  return s;
}

float dot_q4_0_scalar(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  float s = 0.f;
  for (int64_t blk = 0; blk < n / 32; ++blk, b += 18, ++a) {
    const uint8_t* q = b + 2;
    int32_t isum = 0;
    for (int i = 0; i < 16; ++i) isum += int32_t(q[i] & 0xF) * a->q[i] + int32_t(q[i] >> 4) * a->q[i + 16];
    isum -= 8 * (int32_t(a->sum[0]) + a->sum[1]);
    s += f16_at(b) * a->d * float(isum);
  }
  return s;
}

float dot_q4_1_scalar(int64_t n, const void* w, const Q8Block* a) {
  const auto* b = static_cast<const uint8_t*>(w);
  float s = 0.f;
  for (int64_t blk = 0; blk < n / 32; ++blk, b += 20, ++a) {
    const uint8_t* q = b + 4;
    int32_t isum = 0;
    for (int i = 0; i < 16; ++i) isum += int32_t(q[i] & 0xF) * a->q[i] + int32_t(q[i] >> 4) * a->q[i + 16];
    s += f16_at(b) * a->d * float(isum) + f16_at(b + 2) * a->d * float(int32_t(a->sum[0]) + a->sum[1]);
  }
  return s;
}

}  // namespace

DotQ8Fn dot_q8_legacy_kernel(DType t, CpuLevel level) {
  if (level != CpuLevel::scalar) return nullptr;
  switch (t) {
    case DType::q8_0: return dot_q8_0_scalar;
    case DType::q4_0: return dot_q4_0_scalar;
    case DType::q4_1: return dot_q4_1_scalar;
    default: return nullptr;
  }
}

}  // namespace herd
