// F16 and BF16 products on AMX tiles (backend/cpu/amx-gemm.h) against the exact product in double:
// the BF16 parts of weights and activations add up to their values, so the result is within f32
// rounding of Σ|w·x|, for any number of rows, tokens and blocks, and a token's result is the same
// bits alone and among others. Skips where the processor or the OS has no AMX.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/amx-gemm.h"

namespace herd {
namespace {

struct Case {
  std::vector<uint16_t> w;  // [rows, k] as stored
  std::vector<float> x;     // [n, k]
};

Case random_case(DType t, int rows, int64_t k, int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  Case c;
  for (int64_t i = 0; i < rows * k; ++i) {
    const float v = nd(rng) * 0.05f;
    c.w.push_back(t == DType::f16 ? f32_to_f16(v) : f32_to_bf16(v));
  }
  for (int64_t i = 0; i < n * k; ++i) c.x.push_back(nd(rng) * (i % 97 == 0 ? 30.f : 1.f));  // with outliers
  return c;
}

std::vector<float> run(DType t, const Case& c, int rows, int64_t k, int64_t n) {
  std::vector<uint16_t> prepared(size_t(amx_activation_elems(k, n)));
  for (int64_t tile = 0; tile < (n + 15) / 16; ++tile) amx_prepare_activations(c.x.data(), k, n, tile, prepared.data());
  const int64_t stride = rows + 3;  // outputs interleaved with others, as in a wider product
  std::vector<float> out(size_t(n * stride), -7.f);
  amx_gemm_rows(t, k, c.w.data(), size_t(k) * 2, rows, prepared.data(), n, out.data(), stride);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = rows; j < stride; ++j) EXPECT_EQ(out[size_t(i * stride + j)], -7.f) << "wrote past its rows";
  return out;
}

TEST(CpuAmx, ProductsWithinF32RoundingOfTheExactOnes) {
  if (!cpu_has_amx()) GTEST_SKIP() << "no AMX on this machine";
  std::mt19937 rng(7);
  int tested = 0;
  for (DType t : {DType::f16, DType::bf16})
    for (int rows : {1, 7, 16, 37, 64, 200})
      for (int64_t k : {32, 96, 544, 2048})
        for (int64_t n : {1, 5, 16, 17, 70}) {
          const Case c = random_case(t, rows, k, n, rng);
          const std::vector<float> out = run(t, c, rows, k, n);
          for (int64_t i = 0; i < n; ++i)
            for (int r = 0; r < rows; ++r) {
              double exact = 0, mag = 0;
              for (int64_t j = 0; j < k; ++j) {
                const uint16_t h = c.w[size_t(r * k + j)];
                const double w = t == DType::f16 ? f16_to_f32(h) : bf16_to_f32(h), x = c.x[size_t(i * k + j)];
                exact += w * x;
                mag += std::fabs(w * x);
              }
              ASSERT_NEAR(out[size_t(i * (rows + 3) + r)], exact, 2e-6 * mag)
                  << dtype_name(t) << " rows " << rows << " k " << k << " n " << n << " token " << i << " row " << r;
              ++tested;
            }
        }
  EXPECT_GT(tested, 1000);
}

TEST(CpuAmx, ATokensResultDoesNotDependOnTheOthers) {
  if (!cpu_has_amx()) GTEST_SKIP() << "no AMX on this machine";
  std::mt19937 rng(8);
  constexpr int kRows = 50;
  constexpr int64_t kK = 256, kN = 70;
  for (DType t : {DType::f16, DType::bf16}) {
    const Case all = random_case(t, kRows, kK, kN, rng);
    const std::vector<float> together = run(t, all, kRows, kK, kN);
    for (int64_t i : {int64_t(0), int64_t(17), kN - 1}) {
      Case one{all.w, std::vector<float>(all.x.begin() + i * kK, all.x.begin() + (i + 1) * kK)};
      const std::vector<float> alone = run(t, one, kRows, kK, 1);
      for (int r = 0; r < kRows; ++r) EXPECT_EQ(alone[size_t(r)], together[size_t(i * (kRows + 3) + r)]) << i << "," << r;
    }
  }
}

}  // namespace
}  // namespace herd
