// The CPU backend's fast kernels on random inputs of awkward sizes, for every weight type, at
// every level this machine supports (lower levels are always testable; HERD_CPU_LEVEL is how a
// user forces one). Two proofs per type:
//  - each SIMD level equals the scalar level to f32 rounding (same integer sums, other summation
//    order);
//  - the scalar level differs from the exact path (the row dequantized to f32, times the f32
//    activations) by no more than activation quantization can explain: per activation block,
//    half a quantization step d/2 times the sum of |w| over the block.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu-kernels.h"
#include "common/quant.h"
#include "random-blocks.h"

namespace herd {
namespace {

std::vector<CpuLevel> levels() {
  std::vector<CpuLevel> out;
  for (int l = 0; l <= int(detect_cpu_level()); ++l) out.push_back(CpuLevel(l));
  return out;
}

std::vector<float> random_acts(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = d(rng);
  x[size_t(n) / 3] = 9.f;  // an outlier, as real activations have
  return x;
}

double exact_dot(DType t, const void* w, const std::vector<float>& x, double* abs_sum = nullptr) {
  std::vector<float> wf(x.size());
  dequantize_row(t, w, wf.data(), int64_t(x.size()));
  double s = 0, a = 0;
  for (size_t i = 0; i < x.size(); ++i) s += double(wf[i]) * x[i], a += std::fabs(double(wf[i]) * x[i]);
  if (abs_sum) *abs_sum = a;
  return s;
}

TEST(CpuKernels, QuantizedDotsAgreeAcrossLevelsAndWithTheExactPath) {
  std::mt19937 rng(17);
  for (DType t : {DType::q8_0, DType::q4_0, DType::q4_1, DType::q4_k, DType::q5_k, DType::q6_k, DType::fp8, DType::int4}) {
    const int64_t be = dtype_block(t).elems;
    for (int64_t n_blocks : {1, 3, 7, 17}) {
      const int64_t n = n_blocks * be;
      const auto row = random_blocks(t, n_blocks, rng);
      const auto x = random_acts(n, rng);
      const CpuKernels ref = resolve_cpu_kernels(CpuLevel::scalar);
      std::vector<Q8Block> a(static_cast<size_t>(n / 32));
      ref.quantize(x.data(), n, a.data());
      const float want = ref.dot_q8[int(t)](n, row.data(), a.data());
      // Against the exact path: activation rounding is at most d/2 per element.
      std::vector<float> wf(static_cast<size_t>(n));
      dequantize_row(t, row.data(), wf.data(), n);
      double bound = 0, abs_sum = 0;
      for (int64_t i = 0; i < n; ++i) bound += std::fabs(double(wf[size_t(i)])) * a[size_t(i / 32)].d / 2;
      const double exact = exact_dot(t, row.data(), x, &abs_sum);
      EXPECT_LE(std::fabs(want - exact), bound + 1e-5 * abs_sum) << dtype_name(t) << " n " << n;
      for (CpuLevel l : levels()) {
        const CpuKernels k = resolve_cpu_kernels(l);
        std::vector<Q8Block> al(a.size());
        k.quantize(x.data(), n, al.data());
        for (size_t b = 0; b < a.size(); ++b) {
          ASSERT_EQ(al[b].d, a[b].d) << cpu_level_name(l) << " block " << b;
          ASSERT_EQ(std::memcmp(al[b].q, a[b].q, 32), 0) << cpu_level_name(l) << " block " << b;
          ASSERT_EQ(al[b].sum[0], a[b].sum[0]) << cpu_level_name(l);
          ASSERT_EQ(al[b].sum[1], a[b].sum[1]) << cpu_level_name(l);
        }
        const float got = k.dot_q8[int(t)](n, row.data(), a.data());
        EXPECT_NEAR(got, want, 2e-6 * abs_sum + 1e-6) << dtype_name(t) << " n " << n << " " << cpu_level_name(l);
      }
    }
  }
}

// The four-row kernels equal four single-row calls of the same level, to f32 rounding.
TEST(CpuKernels, FourRowKernelsEqualFourSingleRows) {
  std::mt19937 rng(23);
  for (DType t : {DType::q8_0, DType::q4_0, DType::q4_1, DType::q4_k, DType::q5_k, DType::q6_k, DType::fp8, DType::int4}) {
    for (int64_t n_blocks : {1, 3, 9}) {
      const int64_t n = n_blocks * dtype_block(t).elems;
      const size_t row_bytes = dtype_nbytes(t, n);
      const auto rows = random_blocks(t, 4 * n_blocks, rng);  // four rows back to back
      const auto x = random_acts(n, rng);
      for (CpuLevel l : levels()) {
        const CpuKernels k = resolve_cpu_kernels(l);
        if (!k.dot_q8x4[int(t)]) continue;
        std::vector<Q8Block> a(static_cast<size_t>(n / 32));
        k.quantize(x.data(), n, a.data());
        float got[4];
        k.dot_q8x4[int(t)](n, rows.data(), row_bytes, a.data(), got);
        for (int r = 0; r < 4; ++r) {
          double abs_sum = 0;
          exact_dot(t, rows.data() + r * row_bytes, x, &abs_sum);
          const float want = k.dot_q8[int(t)](n, rows.data() + r * row_bytes, a.data());
          EXPECT_NEAR(got[r], want, 2e-6 * abs_sum + 1e-6) << dtype_name(t) << " n " << n << " row " << r << " "
                                                            << cpu_level_name(l);
        }
      }
    }
  }
}

// The panel kernels (weights repacked, several tokens at once) equal the scalar level's single
// rows to f32 rounding, on row counts that are not whole panels, 1 to 9 tokens and 1 to 17
// blocks; and a token's result is bit-identical whatever the number of tokens beside it.
TEST(CpuKernels, PanelKernelsEqualScalarRows) {
  std::mt19937 rng(29);
  const CpuKernels ref = resolve_cpu_kernels(CpuLevel::scalar);
  int tested = 0;
  for (DType t : {DType::q8_0, DType::q4_0, DType::q4_1, DType::q4_k, DType::q5_k, DType::q6_k, DType::fp8, DType::int4}) {
    for (int64_t n_blocks : {1, 2, 17}) {
      const int64_t k = n_blocks * dtype_block(t).elems, nb = k / 32;
      const size_t row_bytes = dtype_nbytes(t, k);
      for (int64_t m : {1, 16, 21, 35}) {
        const auto w = random_blocks(t, m * n_blocks, rng);  // m rows back to back
        for (CpuLevel l : levels()) {
          const PanelKernel pk = panel_kernel(t, l);
          if (!pk.gemm) continue;
          ++tested;
          const int64_t n_panels = (m + kPanelRows - 1) / kPanelRows;
          std::vector<uint8_t> buf(size_t(n_panels) * pk.panel_bytes(k) + 64);
          uint8_t* panels = buf.data() + (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64;
          for (int64_t p = 0; p < n_panels; ++p)
            pk.pack(w.data() + size_t(p * kPanelRows) * row_bytes, row_bytes, int(std::min<int64_t>(kPanelRows, m - p * kPanelRows)),
                    k, panels + size_t(p) * pk.panel_bytes(k));
          for (int64_t n_tok : {1, 2, 3, 4, 5, 7, 8, 9}) {
            std::vector<Q8Block> a(size_t(n_tok * nb));
            std::vector<std::vector<float>> xs;
            for (int64_t i = 0; i < n_tok; ++i) {
              xs.push_back(random_acts(k, rng));
              ref.quantize(xs.back().data(), k, a.data() + i * nb);
            }
            std::vector<float> out(size_t(n_tok * m), NAN);
            for (int64_t p = 0; p < n_panels; ++p)
              pk.gemm(k, panels + size_t(p) * pk.panel_bytes(k), a.data(), n_tok, out.data() + p * kPanelRows, m,
                      int(std::min<int64_t>(kPanelRows, m - p * kPanelRows)));
            for (int64_t i = 0; i < n_tok; ++i) {
              std::vector<float> alone(size_t(m), NAN);
              for (int64_t p = 0; p < n_panels; ++p)
                pk.gemm(k, panels + size_t(p) * pk.panel_bytes(k), a.data() + i * nb, 1, alone.data() + p * kPanelRows, m,
                        int(std::min<int64_t>(kPanelRows, m - p * kPanelRows)));
              for (int64_t r = 0; r < m; ++r) {
                double abs_sum = 0;
                exact_dot(t, w.data() + size_t(r) * row_bytes, xs[size_t(i)], &abs_sum);
                const float want = ref.dot_q8[int(t)](k, w.data() + size_t(r) * row_bytes, a.data() + i * nb);
                const float got = out[size_t(i * m + r)];
                EXPECT_NEAR(got, want, 2e-6 * abs_sum + 1e-6)
                    << dtype_name(t) << " k " << k << " m " << m << " tokens " << n_tok << " token " << i << " row " << r << " "
                    << cpu_level_name(l);
                EXPECT_EQ(got, alone[size_t(r)]) << dtype_name(t) << " tokens " << n_tok << " token " << i << " row " << r;
              }
            }
          }
        }
      }
    }
  }
  if (tested == 0) GTEST_SKIP() << "no level of this machine has panel kernels";
}

// wf in plain type t (f32, f16, bf16 or f8_e4m3), rounded to nearest.
std::vector<uint8_t> encode_plain(DType t, const std::vector<float>& wf) {
  std::vector<uint8_t> w(dtype_nbytes(t, int64_t(wf.size())));
  for (size_t i = 0; i < wf.size(); ++i) {
    const float v = wf[i];
    if (t == DType::f32) std::memcpy(w.data() + 4 * i, &v, 4);
    if (t == DType::f8_e4m3) w[i] = f32_to_e4m3(v);
    const uint16_t h = t == DType::f16 ? f32_to_f16(v) : f32_to_bf16(v);
    if (t == DType::f16 || t == DType::bf16) std::memcpy(w.data() + 2 * i, &h, 2);
  }
  return w;
}

// Attention's weighted sum of V rows over an f16 or FP8 cache: y + a * x at every level, to f32
// rounding of the exact value (one FMA or one multiply-add per element).
TEST(CpuKernels, AxpyOverKvCacheRows) {
  std::mt19937 rng(12);
  std::normal_distribution<float> d(0.f, 1.f);
  for (DType t : {DType::f16, DType::f8_e4m3})
    for (int64_t n : {1, 15, 64, 128, 131}) {
      std::vector<float> xf(static_cast<size_t>(n)), y0(static_cast<size_t>(n));
      for (float& v : xf) v = std::ldexp(d(rng), int(rng() % 12) - 6);
      for (float& v : y0) v = d(rng);
      const std::vector<uint8_t> x = encode_plain(t, xf);
      std::vector<float> xv(static_cast<size_t>(n));
      dequantize_row(t, x.data(), xv.data(), n);
      const float a = 0.37f;
      for (CpuLevel l : levels()) {
        std::vector<float> y = y0;
        resolve_cpu_kernels(l).axpy[int(t)](n, a, x.data(), y.data());
        for (int64_t i = 0; i < n; ++i) {
          const double want = double(y0[size_t(i)]) + double(a) * xv[size_t(i)];
          EXPECT_NEAR(y[size_t(i)], want, 1e-6 * (std::fabs(y0[size_t(i)]) + std::fabs(a * xv[size_t(i)])) + 1e-30)
              << dtype_name(t) << " n " << n << " i " << i << " " << cpu_level_name(l);
        }
      }
    }
}

TEST(CpuKernels, FloatDotsAgreeAcrossLevels) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.f, 1.f);
  // f8_e4m3: the FP8 KV cache's rows, whose codes span every exponent (subnormals too).
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::f8_e4m3}) {
    for (int64_t n : {1, 7, 16, 33, 100, 1027, 4096}) {
      std::vector<float> wf(static_cast<size_t>(n));
      for (float& v : wf) v = t == DType::f8_e4m3 ? std::ldexp(d(rng), int(rng() % 20) - 10) : d(rng);
      const std::vector<uint8_t> w = encode_plain(t, wf);
      const auto x = random_acts(n, rng);
      double abs_sum = 0;
      const double exact = exact_dot(t, w.data(), x, &abs_sum);
      for (CpuLevel l : levels()) {
        const float got = resolve_cpu_kernels(l).dot_f32[int(t)](n, w.data(), x.data());
        EXPECT_NEAR(got, exact, 1e-6 * abs_sum + 1e-6) << dtype_name(t) << " n " << n << " " << cpu_level_name(l);
      }
    }
  }
}

// The multi-token float kernels: 1 to 16 rows times 1 to 200 tokens (a few tokens meet the rows as
// stored, more a widened copy; past 192 tokens in groups), lengths that are not whole vectors or
// whole blocks of 512 columns, activations and outputs with strides of their own. Each output is
// checked against the exact product, and a token's result is bit-identical alone and among
// others. NaN past each token's activations and outputs past `rows` left alone show that nothing
// is read or written outside the operands.
TEST(CpuKernels, FloatTilesAgreeWithTheExactProduct) {
  std::mt19937 rng(31);
  std::normal_distribution<float> d(0.f, 1.f);
  constexpr int kRows = 16;
  int tested = 0;
  for (DType t : {DType::f32, DType::f16, DType::bf16}) {
    for (int64_t n : {1, 7, 16, 33, 100, 1037}) {
      const std::vector<int64_t> token_counts =
          n == 100 ? std::vector<int64_t>{1, 2, 5, 6, 7, 9, 24, 25, 31, 200} : std::vector<int64_t>{1, 2, 5, 6, 7, 9, 24, 25, 31};
      const int64_t max_tok = token_counts.back(), x_stride = n + 3, out_stride = kRows + 3;
      const size_t row_bytes = dtype_nbytes(t, n);
      std::vector<uint8_t> w(kRows * row_bytes);
      for (int64_t i = 0; i < kRows * n; ++i) {
        const float v = d(rng);
        if (t == DType::f32) std::memcpy(w.data() + 4 * i, &v, 4);
        const uint16_t h = t == DType::f16 ? f32_to_f16(v) : f32_to_bf16(v);
        if (t != DType::f32) std::memcpy(w.data() + 2 * i, &h, 2);
      }
      std::vector<float> x(size_t(max_tok * x_stride), NAN);
      std::vector<double> exact(size_t(max_tok * kRows)), abs_sum(size_t(max_tok * kRows));
      for (int64_t i = 0; i < max_tok; ++i) {
        const auto xi = random_acts(n, rng);
        std::copy(xi.begin(), xi.end(), x.begin() + i * x_stride);
        for (int r = 0; r < kRows; ++r)
          exact[size_t(i * kRows + r)] = exact_dot(t, w.data() + size_t(r) * row_bytes, xi, &abs_sum[size_t(i * kRows + r)]);
      }
      for (CpuLevel l : levels()) {
        const DotF32TileFn tile = resolve_cpu_kernels(l).dot_f32_tile[int(t)];
        if (!tile) continue;
        ++tested;
        for (int rows : {1, 3, 4, 8, 13, 16})
          for (int64_t n_tok : token_counts) {
            const std::string what = std::string(dtype_name(t)) + " n " + std::to_string(n) + " rows " + std::to_string(rows) +
                                     " tokens " + std::to_string(n_tok) + " " + cpu_level_name(l);
            std::vector<float> out(size_t(n_tok * out_stride), -7.f);
            tile(n, w.data(), row_bytes, rows, x.data(), x_stride, n_tok, out.data(), out_stride);
            for (int64_t i = 0; i < n_tok; ++i) {
              std::vector<float> alone(out_stride, -7.f);
              tile(n, w.data(), row_bytes, rows, x.data() + i * x_stride, x_stride, 1, alone.data(), out_stride);
              for (int r = 0; r < out_stride; ++r) {
                const float got = out[size_t(i * out_stride + r)];
                if (r >= rows) {
                  ASSERT_EQ(got, -7.f) << what << ": wrote past the rows";
                  continue;
                }
                ASSERT_NEAR(got, exact[size_t(i * kRows + r)], 1e-6 * abs_sum[size_t(i * kRows + r)] + 1e-6) << what;
                ASSERT_EQ(got, alone[size_t(r)]) << what << ", token " << i;
              }
            }
          }
      }
    }
  }
  if (tested == 0) GTEST_SKIP() << "no level of this machine has multi-token float kernels";
}

TEST(CpuKernels, NonFiniteActivationsReachTheResult) {
  std::mt19937 rng(3);
  auto x = random_acts(64, rng);
  x[40] = NAN;
  for (CpuLevel l : levels()) {
    const CpuKernels k = resolve_cpu_kernels(l);
    std::vector<Q8Block> a(2);
    k.quantize(x.data(), 64, a.data());
    EXPECT_TRUE(std::isfinite(a[0].d)) << cpu_level_name(l);
    EXPECT_TRUE(std::isnan(a[1].d)) << cpu_level_name(l);
    const auto row = random_blocks(DType::q8_0, 2, rng);
    EXPECT_TRUE(std::isnan(k.dot_q8[int(DType::q8_0)](64, row.data(), a.data()))) << cpu_level_name(l);
  }
  x[40] = INFINITY;
  for (CpuLevel l : levels()) {
    std::vector<Q8Block> a(2);
    resolve_cpu_kernels(l).quantize(x.data(), 64, a.data());
    EXPECT_TRUE(std::isnan(a[1].d)) << cpu_level_name(l);
  }
}

TEST(CpuKernels, LevelNamesAndTheEnvironmentOverride) {
  EXPECT_STREQ(cpu_level_name(CpuLevel::avx2), "avx2");
  setenv("HERD_CPU_LEVEL", "scalar", 1);
  EXPECT_EQ(detect_cpu_level(), CpuLevel::scalar);
  setenv("HERD_CPU_LEVEL", "avx9000", 1);
  EXPECT_THROW(detect_cpu_level(), std::exception);
  unsetenv("HERD_CPU_LEVEL");
}

}  // namespace
}  // namespace herd
