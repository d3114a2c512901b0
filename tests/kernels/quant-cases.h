// Every quantized block type the device kernels read, with the host's truth for them: random
// blocks with sane scales, dequantized by common/quant.h's dequantize_row.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/quant.h"
#include "kernels/quant-matmul.cuh"
#include "random-blocks.h"

namespace herd {

namespace k = herd::kernels;

struct BlockType {
  DType host;
  k::QuantType device;
};
inline const BlockType kBlockTypes[] = {{DType::q8_0, k::QuantType::q8_0}, {DType::q4_0, k::QuantType::q4_0},
                                        {DType::q4_1, k::QuantType::q4_1}, {DType::q4_k, k::QuantType::q4_k},
                                        {DType::q5_k, k::QuantType::q5_k}, {DType::q6_k, k::QuantType::q6_k},
                                        {DType::fp8, k::QuantType::fp8},   {DType::int4, k::QuantType::int4}};

// `rows` rows of `cols` elements of type t.
inline std::vector<uint8_t> random_rows(DType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  return random_blocks(t, rows * cols / dtype_block(t).elems, rng);
}

inline std::vector<float> host_rows(DType t, const std::vector<uint8_t>& bytes, int64_t rows, int64_t cols) {
  std::vector<float> out(size_t(rows * cols));
  const size_t row_bytes = dtype_nbytes(t, cols);
  for (int64_t r = 0; r < rows; ++r) dequantize_row(t, bytes.data() + size_t(r) * row_bytes, out.data() + r * cols, cols);
  return out;
}

inline int64_t awkward_cols(DType t) { return dtype_block(t).elems == 256 ? 256 * 3 : 32 * 37; }

// got[i * rows + r] (i < n tokens) against the exact product of x [n, cols] and the host's rows wf
// [rows, cols], within 1e-5 of the product's magnitude sum |w x|.
inline void expect_exact_gemv(const std::vector<float>& got, const std::vector<float>& wf, const std::vector<float>& x,
                              int64_t rows, int64_t cols, int n, const std::string& what) {
  for (int i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      double exact = 0, mag = 0;
      for (int64_t c = 0; c < cols; ++c) {
        exact += double(wf[size_t(r * cols + c)]) * x[size_t(i * cols + c)];
        mag += std::fabs(double(wf[size_t(r * cols + c)]) * x[size_t(i * cols + c)]);
      }
      ASSERT_NEAR(got[size_t(i * rows + r)], exact, 1e-5 * mag + 1e-30) << what << " at " << i << "," << r;
    }
}

}  // namespace herd
