// Kernels called through their launchers, for what the Backend interface cannot reach: argmax's
// tie rule and its -1 for rows with a NaN or an infinity, and the f32 -> 16-bit cast in
// front of cuBLAS. References are plain host loops and the host's own rounding functions
// (common/dtype.h). Skips cleanly without a GPU.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "kernels/device-test.h"
#include "kernels/argmax.cuh"
#include "kernels/cast.cuh"

namespace herd {
namespace {

namespace k = herd::kernels;

TEST(KernelArgmax, MatchesMaxElementWithTiesAndNans) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  for (int n_vocab : {128256, 1000, 7, 1}) {
    const int n_rows = 9;
    std::mt19937 rng(31);
    std::normal_distribution<float> dist(0.f, 4.f);
    std::vector<float> logits(size_t(n_rows) * n_vocab);
    for (float& x : logits) x = dist(rng);
    // Row 1: a tie between two maxima (the lower index must win). Row 2: NaNs scattered (-1).
    // Row 3: all -inf (-1). Row 4: the maximum in the very last column. Row 5: one +inf (-1).
    if (n_vocab > 3) {
      logits[size_t(n_vocab) + 2] = logits[size_t(n_vocab) + n_vocab - 1] = 100.f;
      for (int i = 0; i < n_vocab; i += 3) logits[size_t(2) * n_vocab + i] = NAN;
      logits[size_t(4) * n_vocab + n_vocab - 1] = 1e30f;
      logits[size_t(5) * n_vocab + 1] = INFINITY;
    }
    std::fill_n(logits.begin() + 3 * n_vocab, n_vocab, -INFINITY);
    std::vector<int32_t> want(n_rows);
    for (int r = 0; r < n_rows; ++r) {
      int best = 0;
      float bv = -INFINITY;
      for (int i = 0; i < n_vocab; ++i) {
        const float v = logits[size_t(r) * n_vocab + i];
        if (!std::isfinite(v)) {
          best = -1;
          break;
        }
        if (v > bv) bv = v, best = i;
      }
      want[size_t(r)] = best;
    }
    DeviceBuffer<float> d_logits(logits.size());
    DeviceBuffer<int32_t> d_out(n_rows);
    CUDA_OK(cudaMemcpy(d_logits.p, logits.data(), logits.size() * 4, cudaMemcpyHostToDevice));
    CUDA_OK(k::argmax(d_logits.p, d_out.p, n_rows, n_vocab, n_vocab, nullptr));
    std::vector<int32_t> got(n_rows);
    CUDA_OK(cudaMemcpy(got.data(), d_out.p, size_t(n_rows) * 4, cudaMemcpyDeviceToHost));
    EXPECT_EQ(got, want) << "n_vocab " << n_vocab;
  }
}

TEST(KernelCast, RoundsToNearestEvenLikeTheHost) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  for (int64_t n : {int64_t(1) << 20, int64_t(4099), int64_t(3)}) {
    std::mt19937 rng(32);
    std::normal_distribution<float> dist(0.f, 10.f);
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = dist(rng);
    x[0] = 1.00390625f;  // exactly halfway between two bf16 values: ties to even
    if (n > 2) x[1] = -0.f, x[2] = 3e-40f;  // signed zero, a subnormal
    DeviceBuffer<float> d_x(x.size());
    DeviceBuffer<uint16_t> d_out(x.size() + 1);
    CUDA_OK(cudaMemcpy(d_x.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    for (k::ElemType t : {k::ElemType::bf16, k::ElemType::f16}) {
      // Offset by one element: the unaligned path must agree with the vector path.
      for (int offset : {0, 1}) {
        if (offset >= n) continue;
        const int64_t m = n - offset;
        CUDA_OK(k::cast_f32(d_x.p + offset, d_out.p, t, m, nullptr));
        std::vector<uint16_t> got(static_cast<size_t>(m));
        CUDA_OK(cudaMemcpy(got.data(), d_out.p, size_t(m) * 2, cudaMemcpyDeviceToHost));
        size_t n_bad = 0;
        for (int64_t i = 0; i < m; ++i) {
          const float v = x[size_t(i + offset)];
          const uint16_t want = t == k::ElemType::bf16 ? f32_to_bf16(v) : f32_to_f16(v);
          n_bad += got[size_t(i)] != want;
        }
        EXPECT_EQ(n_bad, 0u) << (t == k::ElemType::bf16 ? "bf16" : "f16") << " n " << n << " offset " << offset;
      }
    }
  }
}

}  // namespace
}  // namespace herd
