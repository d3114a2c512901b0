// Quantized weights on the device (kernels/quant-matmul.cuh) against the host's dequantize_row
// (common/quant.h), for every block type, on random blocks with sane scales and awkward sizes:
// widening to BF16 equals the host's values rounded to BF16; the GEMV equals the exact product to
// f32 rounding; the embedding gather equals the host rows, zeros for -1, NaN for a bad id.
// Skips cleanly without a GPU.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "common/quant.h"
#include "kernels/device-test.h"
#include "kernels/quant-matmul.cuh"
#include "quant-cases.h"

namespace herd {
namespace {

TEST(KernelQuant, RowLayoutsMatchTheHost) {
  for (const BlockType& t : kBlockTypes)
    EXPECT_EQ(k::quant_row_bytes(t.device, awkward_cols(t.host)), int64_t(dtype_nbytes(t.host, awkward_cols(t.host))));
}

TEST(KernelQuant, DequantizeEqualsTheHostRoundedToBf16) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(1);
  for (const BlockType& t : kBlockTypes) {
    const int64_t rows = 7, cols = awkward_cols(t.host);
    const std::vector<uint8_t> w = random_rows(t.host, rows, cols, rng);
    const std::vector<float> want = host_rows(t.host, w, rows, cols);
    DeviceBuffer<uint8_t> dw(w.size());
    DeviceBuffer<uint16_t> dout(size_t(rows * cols));
    CUDA_OK(cudaMemcpy(dw.p, w.data(), w.size(), cudaMemcpyHostToDevice));
    CUDA_OK(k::quant_dequantize(dw.p, t.device, rows, cols, dout.p, nullptr));
    std::vector<uint16_t> got(size_t(rows * cols));
    CUDA_OK(cudaMemcpy(got.data(), dout.p, got.size() * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < got.size(); ++i) {
      // The device may fuse a multiply-add the host rounds twice: one BF16 step at most.
      const float g = bf16_to_f32(got[i]), h = bf16_to_f32(f32_to_bf16(want[i]));
      ASSERT_LE(std::fabs(g - h), std::fabs(h) / 128 + 1e-30f) << dtype_name(t.host) << " element " << i;
    }
  }
}

TEST(KernelQuant, GemvEqualsTheExactProduct) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  for (const BlockType& t : kBlockTypes)
    for (int64_t rows : {1, 9, 70})
      for (int n : {1, 3, 8}) {
        const int64_t cols = awkward_cols(t.host);
        const std::vector<uint8_t> w = random_rows(t.host, rows, cols, rng);
        const std::vector<float> wf = host_rows(t.host, w, rows, cols);
        std::vector<float> x(size_t(n * cols));
        for (float& v : x) v = nd(rng);
        DeviceBuffer<uint8_t> dw(w.size());
        DeviceBuffer<float> dx(x.size()), dout(size_t(n * rows));
        CUDA_OK(cudaMemcpy(dw.p, w.data(), w.size(), cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemcpy(dx.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
        CUDA_OK(k::quant_gemv(dw.p, t.device, rows, cols, dx.p, dout.p, n, nullptr));
        std::vector<float> got(size_t(n * rows));
        CUDA_OK(cudaMemcpy(got.data(), dout.p, got.size() * 4, cudaMemcpyDeviceToHost));
        const std::string what = std::string(dtype_name(t.host)) + " rows " + std::to_string(rows);
        expect_exact_gemv(got, wf, x, rows, cols, n, what + " tokens " + std::to_string(n));
      }
}

TEST(KernelQuant, EmbedGathersHostRows) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(3);
  for (const BlockType& t : kBlockTypes) {
    const int64_t n_vocab = 11, cols = awkward_cols(t.host);
    const std::vector<uint8_t> table = random_rows(t.host, n_vocab, cols, rng);
    const std::vector<float> rows = host_rows(t.host, table, n_vocab, cols);
    const std::vector<int32_t> ids = {3, 0, 10, -1, 11, 3};
    DeviceBuffer<uint8_t> dt(table.size());
    DeviceBuffer<int32_t> di(ids.size());
    DeviceBuffer<float> dout(ids.size() * size_t(cols));
    CUDA_OK(cudaMemcpy(dt.p, table.data(), table.size(), cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(di.p, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice));
    CUDA_OK(k::quant_embed(dt.p, t.device, n_vocab, cols, di.p, dout.p, int(ids.size()), nullptr));
    std::vector<float> got(ids.size() * size_t(cols));
    CUDA_OK(cudaMemcpy(got.data(), dout.p, got.size() * 4, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < ids.size(); ++i)
      for (int64_t c = 0; c < cols; ++c) {
        const float g = got[i * size_t(cols) + size_t(c)];
        if (ids[i] == -1) ASSERT_EQ(g, 0.f);
        else if (ids[i] >= n_vocab) ASSERT_TRUE(std::isnan(g));
        else ASSERT_NEAR(g, rows[size_t(ids[i] * cols + c)], 1e-6f * std::fabs(rows[size_t(ids[i] * cols + c)]) + 1e-30f)
            << dtype_name(t.host) << " id " << ids[i] << " column " << c;
      }
  }
}

}  // namespace
}  // namespace herd
