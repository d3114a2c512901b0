#include "backend/cpu/fast-matmul.h"

#include <algorithm>

#include "common/check.h"

namespace herd {

namespace {

// Rows go to threads in chunks of kRows; within a chunk, tokens in tiles of kTokens. A chunk's
// weights stay in cache while every token tile passes over them, and a tile's activations stay
// in cache across the chunk's rows.
constexpr int64_t kRows = 16, kTokens = 32;

}  // namespace

void FastMatmul::run(const Tensor& x, std::span<const MatmulOut> parts) {
  HERD_CHECK(x.dtype == DType::f32, "matmul input must be f32, is ", dtype_name(x.dtype));
  const int64_t k = x.dim(-1), n = x.numel() / k, nb = k / 32;
  const float* xs = static_cast<const float*>(x.data());

  bool any_quantized = false;
  std::vector<int64_t> first_chunk{0};  // part p owns chunks [first_chunk[p], first_chunk[p + 1])
  for (const MatmulOut& p : parts) {
    const int64_t m = p.w.dim(0);
    HERD_CHECK(p.w.dim(1) == k, "matmul: x has ", k, " columns, w ", shape_str(p.w.shape));
    HERD_CHECK(p.out.numel() == n * m, "matmul: out ", shape_str(p.out.shape), " for ", n, " x ", m);
    HERD_CHECK(is_quantized(p.w.dtype) ? k_.dot_q8[int(p.w.dtype)] != nullptr : k_.dot_f32[int(p.w.dtype)] != nullptr,
               "no CPU kernel for ", dtype_name(p.w.dtype));
    any_quantized |= is_quantized(p.w.dtype);
    first_chunk.push_back(first_chunk.back() + (m + kRows - 1) / kRows);
  }

  // Each token's activations quantized once, for every quantized weight.
  const Q8Block* a = nullptr;
  if (any_quantized) {
    HERD_CHECK(k % 32 == 0, "matmul: ", k, " columns are not whole activation blocks");
    if (q8_.size() < size_t(n * nb)) q8_.resize(size_t(n * nb));
    Q8Block* q = q8_.data();
    auto quantize = [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) k_.quantize(xs + i * k, k, q + i * nb);
    };
    if (n < 8) quantize(0, n);  // one token's worth is not worth waking the pool for
    else pool_.parallel_for(n, quantize);
    a = q;
  }

  pool_.parallel_for(first_chunk.back(), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const size_t p = size_t(std::upper_bound(first_chunk.begin(), first_chunk.end(), c) - first_chunk.begin() - 1);
      const Tensor& w = parts[p].w;
      float* ys = static_cast<float*>(parts[p].out.data());
      const int64_t m = w.dim(0), j0 = (c - first_chunk[p]) * kRows, j1 = std::min(m, j0 + kRows);
      const auto* wb = static_cast<const uint8_t*>(w.data());
      const size_t row_bytes = dtype_nbytes(w.dtype, k);
      if (is_quantized(w.dtype)) {
        const DotQ8Fn dot = k_.dot_q8[int(w.dtype)];
        const DotQ8x4Fn dot4 = k_.dot_q8x4[int(w.dtype)];
        for (int64_t t0 = 0; t0 < n; t0 += kTokens) {
          const int64_t t1 = std::min(n, t0 + kTokens);
          int64_t j = j0;
          // Four rows at a time where the level has a four-row kernel: ys is [n, m], so a token's
          // four results are adjacent.
          for (; dot4 && j + 4 <= j1; j += 4)
            for (int64_t i = t0; i < t1; ++i) dot4(k, wb + size_t(j) * row_bytes, row_bytes, a + i * nb, ys + i * m + j);
          for (; j < j1; ++j)
            for (int64_t i = t0; i < t1; ++i) ys[i * m + j] = dot(k, wb + size_t(j) * row_bytes, a + i * nb);
        }
      } else {
        const DotF32Fn dot = k_.dot_f32[int(w.dtype)];
        for (int64_t t0 = 0; t0 < n; t0 += kTokens)
          for (int64_t j = j0; j < j1; ++j)
            for (int64_t i = t0; i < std::min(n, t0 + kTokens); ++i) ys[i * m + j] = dot(k, wb + size_t(j) * row_bytes, xs + i * k);
      }
    }
  });
}

}  // namespace herd
