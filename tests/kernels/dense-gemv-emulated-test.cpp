// The decode GEMV (kernels/dense-gemv-kernel.cuh) run on the CPU through emulated-device.h, against
// the CPU backend's exact products: the part selection of a fused launch, the 16-byte chunking of
// 16-bit weights and of FP8 codes with row scales, the unrolled tail of a row and each token count
// are checked in CI, where no GPU is. The same
// kernel runs on the device in cuda-backend-test.cpp (label gpu).
#include "emulated-device.h"
// (the emulation first)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "common/dtype.h"
#include "kernels/dense-gemv-kernel.cuh"

namespace herd {
namespace {

namespace gk = kernels::gemv;

// Parts of `rows` rows each, cols columns, n tokens: the emulated launch against the CPU backend.
// dtype bf16 or f16, or f8_e4m3 for E4M3 codes with a random scale per row.
void check(DType dtype, const std::vector<int64_t>& rows, int64_t cols, int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> x(size_t(n * cols));
  for (float& v : x) v = dist(rng);
  const auto cpu = make_cpu_backend(1, /*exact=*/true);
  Tensor xt = cpu->alloc(DType::f32, {n, cols});
  cpu->write(xt, x.data(), xt.nbytes());

  const bool fp8 = dtype == DType::f8_e4m3;
  gk::Parts parts{};
  parts.n = int(rows.size());
  std::vector<std::vector<uint16_t>> w16(rows.size());
  std::vector<std::vector<uint8_t>> w8(rows.size());
  std::vector<std::vector<float>> got(rows.size()), wf(rows.size()), scales(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const size_t n_w = size_t(rows[i] * cols);
    wf[i].resize(n_w);
    if (fp8) {
      w8[i].resize(n_w);
      for (int64_t r = 0; r < rows[i]; ++r) scales[i].push_back(0.001f + 0.01f * (dist(rng) + 1.f));
      for (size_t j = 0; j < n_w; ++j) {
        w8[i][j] = f32_to_e4m3(300.f * dist(rng));  // finite codes of every magnitude
        wf[i][j] = scales[i][j / size_t(cols)] * e4m3_to_f32(w8[i][j]);
      }
    } else {
      w16[i].resize(n_w);
      for (size_t j = 0; j < n_w; ++j) {
        w16[i][j] = dtype == DType::bf16 ? f32_to_bf16(dist(rng)) : f32_to_f16(dist(rng));
        wf[i][j] = dtype == DType::bf16 ? bf16_to_f32(w16[i][j]) : f16_to_f32(w16[i][j]);
      }
    }
    got[i].assign(size_t(n * rows[i]), NAN);
    parts.p[i] = {fp8 ? static_cast<const void*>(w8[i].data()) : w16[i].data(), got[i].data(), rows[i],
                  fp8 ? scales[i].data() : nullptr};
    parts.row_end[i] = (i > 0 ? parts.row_end[i - 1] : 0) + rows[i];
  }
  parts.total_rows = parts.row_end[rows.size() - 1];
  const dim3 grid(unsigned((parts.total_rows + gk::kWarps - 1) / gk::kWarps));
  auto run = [&]<typename TW, int NT>() {
    kernels::emu::launch(grid, gk::kThreads, [&] { gk::dense_gemv_kernel<TW, NT>(parts, cols, x.data()); });
  };
  auto run_n = [&]<typename TW>() {
    switch (n) {
      case 1: return run.template operator()<TW, 1>();
      case 3: return run.template operator()<TW, 3>();
      case 8: return run.template operator()<TW, 8>();
      default: FAIL() << n << " tokens";
    }
  };
  if (dtype == DType::bf16) run_n.template operator()<__nv_bfloat16>();
  else if (dtype == DType::f16) run_n.template operator()<__half>();
  else run_n.template operator()<__nv_fp8_e4m3>();

  for (size_t i = 0; i < rows.size(); ++i) {
    Tensor wt = cpu->alloc(DType::f32, {rows[i], cols}), out = cpu->alloc(DType::f32, {n, rows[i]});
    cpu->write(wt, wf[i].data(), wt.nbytes());
    cpu->matmul(xt, wt, out);
    std::vector<float> want(size_t(out.numel()));
    cpu->read(out, want.data(), out.nbytes());
    for (int t = 0; t < n; ++t)
      for (int64_t r = 0; r < rows[i]; ++r) {
        double s = 0;  // f32 sums in another order: a few ulps of sum |w x|
        for (int64_t c = 0; c < cols; ++c) s += std::fabs(x[size_t(t * cols + c)] * wf[i][size_t(r * cols + c)]);
        const size_t at = size_t(t * rows[i] + r);
        ASSERT_NEAR(got[i][at], want[at], 2e-6 * s + 1e-7)
            << dtype_name(dtype) << " part " << i << " row " << r << " token " << t << ", " << cols << " columns";
      }
  }
}

TEST(DenseGemvEmulated, OneWeightOneToken) { check(DType::bf16, {13}, 4096, 1, 1); }

// Rows that end mid-chunk-round (136 = 17 chunks: the unrolled loop's tail) and the smallest row.
TEST(DenseGemvEmulated, ShortAndRaggedRows) {
  check(DType::f16, {9}, 136, 3, 2);
  check(DType::bf16, {3}, 8, 8, 3);
}

// q, k and v in one launch: parts that end inside a block of 8 rows.
TEST(DenseGemvEmulated, ThreePartsInOneLaunch) {
  check(DType::bf16, {20, 5, 7}, 1032, 3, 4);
  check(DType::f16, {1, 1, 17}, 264, 8, 5);
}

// FP8 rows: 16 codes a chunk, each part's own row scales applied to its sums.
TEST(DenseGemvEmulated, Fp8RowsWithRowScales) {
  check(DType::f8_e4m3, {7}, 4096, 1, 6);
  check(DType::f8_e4m3, {20, 5, 9}, 1040, 3, 7);
  check(DType::f8_e4m3, {2}, 16, 8, 8);
}

// SwiGLU in one launch: warp r takes row r of gate and of up, and writes silu(g) * u; against the CPU
// backend's swiglu (two products, then silu_mul).
TEST(DenseGemvEmulated, SwigluPairsGateAndUp) {
  struct Case {
    DType dtype;
    int64_t rows, cols;
    int n;
  };
  for (const Case& c : {Case{DType::bf16, 19, 1032, 3}, Case{DType::f8_e4m3, 9, 512, 8}, Case{DType::f16, 1, 8, 1}}) {
    // Plain copies: lambdas below capture them (clang before 16 cannot capture structured bindings).
    const DType dtype = c.dtype;
    const int64_t rows = c.rows, cols = c.cols;
    const int n = c.n;
    std::mt19937 rng{uint32_t(rows)};
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    const bool fp8 = dtype == DType::f8_e4m3;
    std::vector<float> x(size_t(n * cols)), wf[2], scales[2];
    std::vector<uint16_t> w16[2];
    std::vector<uint8_t> w8[2];
    for (float& v : x) v = dist(rng);
    for (int p = 0; p < 2; ++p) {
      for (int64_t r = 0; r < rows; ++r) scales[p].push_back(0.002f + 0.01f * (dist(rng) + 1.f));
      for (int64_t j = 0; j < rows * cols; ++j) {
        if (fp8) {
          w8[p].push_back(f32_to_e4m3(300.f * dist(rng)));
          wf[p].push_back(scales[p][size_t(j / cols)] * e4m3_to_f32(w8[p].back()));
        } else {
          w16[p].push_back(dtype == DType::bf16 ? f32_to_bf16(dist(rng)) : f32_to_f16(dist(rng)));
          wf[p].push_back(dtype == DType::bf16 ? bf16_to_f32(w16[p].back()) : f16_to_f32(w16[p].back()));
        }
      }
    }
    std::vector<float> got(size_t(n * rows), NAN), up_untouched(size_t(n * rows), 7.f);
    auto part = [&](int p, float* out) {
      return kernels::GemvPart{fp8 ? static_cast<const void*>(w8[p].data()) : w16[p].data(), out, rows,
                         fp8 ? scales[p].data() : nullptr};
    };
    const kernels::GemvPart gate = part(0, got.data()), up = part(1, up_untouched.data());
    const dim3 grid(unsigned((rows + gk::kWarps - 1) / gk::kWarps));
    auto run = [&]<typename TW, int NT>() {
      kernels::emu::launch(grid, gk::kThreads, [&] { gk::swiglu_gemv_kernel<TW, NT>(gate, up, cols, x.data()); });
    };
    auto run_n = [&]<typename TW>() {
      if (n == 1) run.template operator()<TW, 1>();
      else if (n == 3) run.template operator()<TW, 3>();
      else run.template operator()<TW, 8>();
    };
    if (dtype == DType::bf16) run_n.template operator()<__nv_bfloat16>();
    else if (dtype == DType::f16) run_n.template operator()<__half>();
    else run_n.template operator()<__nv_fp8_e4m3>();

    const auto cpu = make_cpu_backend(1, /*exact=*/true);
    auto tensor = [&](const Shape& shape, const float* data) {
      Tensor t = cpu->alloc(DType::f32, shape);
      if (data) cpu->write(t, data, t.nbytes());
      return t;
    };
    Tensor xt = tensor({n, cols}, x.data());
    Tensor wg = tensor({rows, cols}, wf[0].data()), wu = tensor({rows, cols}, wf[1].data());
    Tensor gt = tensor({n, rows}, nullptr), ut = tensor({n, rows}, nullptr);
    cpu->swiglu(xt, wg, wu, gt, ut);
    std::vector<float> want(size_t(n * rows)), u(want.size());
    cpu->read(gt, want.data(), gt.nbytes());
    cpu->read(ut, u.data(), ut.nbytes());
    for (int t = 0; t < n; ++t)
      for (int64_t r = 0; r < rows; ++r) {
        double g = 0, sg = 0, su = 0;  // the gate product, and each product's sum |w x| (its rounding scale)
        for (int64_t c = 0; c < cols; ++c) {
          g += double(x[size_t(t * cols + c)]) * wf[0][size_t(r * cols + c)];
          sg += std::fabs(x[size_t(t * cols + c)] * wf[0][size_t(r * cols + c)]);
          su += std::fabs(x[size_t(t * cols + c)] * wf[1][size_t(r * cols + c)]);
        }
        const size_t at = size_t(t * rows + r);
        // d(silu(g) u) = silu'(g) u dg + silu(g) du, |silu'| <= 1.1; each product good to a few f32 ulps.
        const double tol = 2e-6 * (1.1 * sg * std::fabs(u[at]) + std::fabs(g / (1 + std::exp(-g))) * su) + 1e-6;
        ASSERT_NEAR(got[at], want[at], tol) << dtype_name(dtype) << " row " << r << " token " << t;
      }
    EXPECT_EQ(up_untouched, std::vector<float>(up_untouched.size(), 7.f)) << "up.out is not written";
  }
}

}  // namespace
}  // namespace herd
