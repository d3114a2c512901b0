// Random blocks of a quantized weight type for kernel tests: random bytes, with the scales (and
// FP8's codes, INT4's zero points) kept sane, so that every quant value occurs and sums stay finite.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "common/dtype.h"

namespace herd {

inline std::vector<uint8_t> random_blocks(DType t, int64_t n_blocks, std::mt19937& rng) {
  const DTypeBlock blk = dtype_block(t);
  std::vector<uint8_t> bytes(size_t(n_blocks) * blk.bytes);
  for (auto& b : bytes) b = uint8_t(rng());
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  auto put_f16 = [&](uint8_t* p, float v) {
    const uint16_t h = f32_to_f16(v);
    std::memcpy(p, &h, 2);
  };
  for (int64_t i = 0; i < n_blocks; ++i) {
    uint8_t* b = bytes.data() + size_t(i) * blk.bytes;
    switch (t) {
      case DType::q8_0:
      case DType::q4_0: put_f16(b, scale(rng)); break;
      case DType::q4_1: put_f16(b, scale(rng)), put_f16(b + 2, -8 * scale(rng)); break;
      case DType::q4_k:
      case DType::q5_k: put_f16(b, scale(rng) / 8), put_f16(b + 2, scale(rng) / 8); break;
      case DType::q6_k: put_f16(b + 208, scale(rng) / 16); break;
      case DType::fp8: {
        // d a small positive f32; every E4M3 code but NaN's (0x7f, 0xff), subnormals included.
        const float d = scale(rng) / 16;
        std::memcpy(b, &d, 4);
        for (int j = 4; j < 36; ++j)
          if ((b[j] & 0x7f) == 0x7f) b[j] = uint8_t(b[j] ^ (1u << (rng() % 7)));
        break;
      }
      case DType::int4: put_f16(b, scale(rng)), b[2] = uint8_t(rng() % 17); break;
      default: break;
    }
  }
  return bytes;
}

}  // namespace herd
