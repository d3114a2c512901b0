// The quantized-weight kernels (kernels/quant-matmul-kernel.cuh) run on the CPU through
// emulated-device.h, against the host's dequantize_row: every block decoder, the GEMV's sums and
// row mapping, the widening to BF16 and the embedding gather, and the FP8-rows kernels (per-token
// quantization, widening, gather), are checked in CI, where no GPU is.
// The same kernels run on the device in quant-matmul-test.cpp (label gpu).
#include "emulated-device.h"
// (the emulation first)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/fp8-rows-kernel.cuh"
#include "kernels/quant-matmul-kernel.cuh"
#include "quant-cases.h"

namespace herd {
namespace {

namespace qk = kernels::quant;

template <k::QuantType T>
int64_t row_bytes(int64_t cols) {
  return cols / qk::block_shape(T).elems * qk::block_shape(T).bytes;
}

template <k::QuantType T>
void gemv(const std::vector<uint8_t>& w, int64_t rows, int64_t cols, const std::vector<float>& x, float* out, int n) {
  const dim3 grid(unsigned((rows + qk::kGemvWarps - 1) / qk::kGemvWarps));
  kernels::emu::launch(grid, 32 * qk::kGemvWarps, [&] {
    qk::gemv_kernel<T>(w.data(), rows, cols, row_bytes<T>(cols), x.data(), out, n);
  });
}

template <k::QuantType T>
void dequantize(const std::vector<uint8_t>& w, int64_t rows, int64_t cols, __nv_bfloat16* out) {
  const int64_t n = rows * (cols / 32);
  kernels::emu::launch(dim3(unsigned((n + 255) / 256)), 256, [&] {
    qk::dequantize_kernel<T>(w.data(), rows, cols, row_bytes<T>(cols), out);
  });
}

template <k::QuantType T>
void embed(const std::vector<uint8_t>& table, int64_t n_vocab, int64_t cols, const std::vector<int32_t>& ids,
           float* out) {
  kernels::emu::launch(dim3(unsigned(ids.size())), 128, [&] {
    qk::embed_kernel<T>(table.data(), n_vocab, cols, row_bytes<T>(cols), ids.data(), out);
  });
}

// F<T>() for the run-time type t.
template <typename F>
void dispatch(k::QuantType t, F&& f) {
  switch (t) {
    case k::QuantType::q8_0: return f.template operator()<k::QuantType::q8_0>();
    case k::QuantType::q4_0: return f.template operator()<k::QuantType::q4_0>();
    case k::QuantType::q4_1: return f.template operator()<k::QuantType::q4_1>();
    case k::QuantType::q4_k: return f.template operator()<k::QuantType::q4_k>();
    case k::QuantType::q5_k: return f.template operator()<k::QuantType::q5_k>();
    case k::QuantType::q6_k: return f.template operator()<k::QuantType::q6_k>();
    case k::QuantType::fp8: return f.template operator()<k::QuantType::fp8>();
    case k::QuantType::int4: return f.template operator()<k::QuantType::int4>();
  }
}

TEST(QuantKernelsEmulated, GemvEqualsTheExactProduct) {
  std::mt19937 rng(12);
  std::normal_distribution<float> nd;
  for (const BlockType& t : kBlockTypes)
    for (int64_t rows : {1, 9}) {
      const int n = rows == 1 ? 1 : 3;
      const int64_t cols = awkward_cols(t.host);
      const std::vector<uint8_t> w = random_rows(t.host, rows, cols, rng);
      const std::vector<float> wf = host_rows(t.host, w, rows, cols);
      std::vector<float> x(size_t(n * cols)), got(size_t(n * rows), NAN);
      for (float& v : x) v = nd(rng);
      dispatch(t.device, [&]<k::QuantType T>() { gemv<T>(w, rows, cols, x, got.data(), n); });
      const std::string what = std::string(dtype_name(t.host)) + " rows " + std::to_string(rows);
      expect_exact_gemv(got, wf, x, rows, cols, n, what + " tokens " + std::to_string(n));
    }
}

TEST(QuantKernelsEmulated, DequantizeEqualsTheHostRoundedToBf16) {
  std::mt19937 rng(13);
  for (const BlockType& t : kBlockTypes) {
    const int64_t rows = 3, cols = awkward_cols(t.host);
    const std::vector<uint8_t> w = random_rows(t.host, rows, cols, rng);
    const std::vector<float> want = host_rows(t.host, w, rows, cols);
    std::vector<__nv_bfloat16> got(size_t(rows * cols));
    dispatch(t.device, [&]<k::QuantType T>() { dequantize<T>(w, rows, cols, got.data()); });
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(float(got[i]), bf16_to_f32(f32_to_bf16(want[i]))) << dtype_name(t.host) << " element " << i;
  }
}

TEST(QuantKernelsEmulated, EmbedGathersHostRows) {
  std::mt19937 rng(14);
  for (const BlockType& t : kBlockTypes) {
    const int64_t n_vocab = 5, cols = awkward_cols(t.host);
    const std::vector<uint8_t> table = random_rows(t.host, n_vocab, cols, rng);
    const std::vector<float> rows = host_rows(t.host, table, n_vocab, cols);
    const std::vector<int32_t> ids = {3, 0, -1, 5, 4};
    std::vector<float> got(ids.size() * size_t(cols));
    dispatch(t.device, [&]<k::QuantType T>() { embed<T>(table, n_vocab, cols, ids, got.data()); });
    for (size_t i = 0; i < ids.size(); ++i)
      for (int64_t c = 0; c < cols; ++c) {
        const float g = got[i * size_t(cols) + size_t(c)];
        if (ids[i] == -1) ASSERT_EQ(g, 0.f);
        else if (ids[i] >= n_vocab) ASSERT_TRUE(std::isnan(g));
        else ASSERT_EQ(g, rows[size_t(ids[i] * cols + c)]) << dtype_name(t.host) << " id " << ids[i] << " column " << c;
      }
  }
}

// FP8 rows (kernels/fp8-rows-kernel.cuh): per-token quantization against the host's rule (scale =
// max |x| / 448, 1 for a row of zeros; codes rounded to nearest even), widening to BF16 and the gather.
TEST(QuantKernelsEmulated, Fp8RowsQuantizeWidenAndGather) {
  namespace fk = kernels::fp8rows;
  const int64_t n = 4, cols = 300, stride = 310;  // a row length no thread count divides, a padded stride
  std::mt19937 rng(15);
  std::normal_distribution<float> nd(0.f, 3.f);
  std::vector<float> x(size_t(n * stride), NAN);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < cols; ++c) x[size_t(t * stride + c)] = t == 2 ? 0.f : nd(rng) * float(t + 1);
  std::vector<__nv_fp8_e4m3> codes(size_t(n * cols));
  std::vector<float> scales(size_t(n), NAN);
  kernels::emu::launch(dim3(unsigned(n)), fk::kQuantizeThreads, [&] {
    fk::quantize_kernel(x.data(), cols, stride, codes.data(), scales.data());
  });
  for (int64_t t = 0; t < n; ++t) {
    float amax = 0.f;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(x[size_t(t * stride + c)]));
    const float scale = amax > 0.f ? amax / 448.f : 1.f;
    ASSERT_EQ(scales[size_t(t)], scale) << "row " << t;
    for (int64_t c = 0; c < cols; ++c) {
      uint8_t code;
      std::memcpy(&code, &codes[size_t(t * cols + c)], 1);
      ASSERT_EQ(code, f32_to_e4m3(x[size_t(t * stride + c)] / scale)) << "row " << t << " column " << c;
    }
  }

  std::vector<__nv_bfloat16> wide(codes.size());
  kernels::emu::launch(dim3(unsigned((codes.size() + 255) / 256)), 256, [&] {
    fk::to_bf16_kernel(codes.data(), scales.data(), n, cols, wide.data());
  });
  for (size_t i = 0; i < wide.size(); ++i)
    ASSERT_EQ(float(wide[i]), bf16_to_f32(f32_to_bf16(scales[i / size_t(cols)] * float(codes[i])))) << i;

  const std::vector<int32_t> ids = {3, 0, -1, 4};
  std::vector<float> rows(ids.size() * size_t(cols), 7.f);
  kernels::emu::launch(dim3(unsigned(ids.size())), 128, [&] {
    fk::embed_kernel(codes.data(), scales.data(), n, cols, ids.data(), rows.data());
  });
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t c = 0; c < cols; ++c) {
      const float g = rows[i * size_t(cols) + size_t(c)];
      if (ids[i] == -1) ASSERT_EQ(g, 0.f);
      else if (ids[i] >= n) ASSERT_TRUE(std::isnan(g));
      else ASSERT_EQ(g, scales[size_t(ids[i])] * float(codes[size_t(ids[i] * cols + c)]));
    }
}

}  // namespace
}  // namespace herd
