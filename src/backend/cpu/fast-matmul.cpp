#include "backend/cpu/fast-matmul.h"

#include <algorithm>
#include <cstdlib>

#include "backend/cpu/amx-gemm.h"
#include "common/check.h"

namespace herd {

namespace {

// Rows go to threads in chunks of kRows (one panel for packed weights); within a chunk, tokens in
// tiles of kTokens. A chunk's weights stay in cache while every token tile passes over them, and
// a tile's activations stay in cache across the chunk's rows.
constexpr int64_t kRows = kPanelRows, kTokens = 32;

// From this many tokens on, F16 and BF16 products go to AMX tiles. Splitting the weights into BF16
// parts costs about as much as the FMA kernels' whole product of one token, so fewer tokens do
// better on those (one thread, 4096 x 4096 F16: even at about 48 tokens, 1.3x faster at 128,
// 1.6x at 256; decode 2.3x slower).
constexpr int64_t kAmxMinTokens = 64;

}  // namespace

bool FastMatmul::amx_takes(const Tensor& w, int64_t n_tok) const {
  return k_.amx && n_tok >= kAmxMinTokens && (w.dtype == DType::f16 || w.dtype == DType::bf16) && w.dim(1) % 32 == 0;
}

void FastMatmul::add_weight(const Tensor& w) {
  if (w.shape.size() != 2 || k_.panel[int(w.dtype)].gemm == nullptr || w.dim(1) % 32 != 0) return;
  // Drop the entries of weights that are gone (a model unloaded), then note this one.
  std::erase_if(packed_, [](const auto& e) { return e.second.owner.expired(); });
  packed_[w.data()] = Packed{w.storage, nullptr, 0};
}

const FastMatmul::Packed* FastMatmul::panels_of(const Tensor& w) {
  const auto it = packed_.find(w.data());
  if (it == packed_.end()) return nullptr;
  Packed& p = it->second;
  const auto& owner = p.owner;
  if (owner.owner_before(w.storage) || w.storage.owner_before(owner)) return nullptr;  // another tensor
  if (!p.panels) {
    const PanelKernel& pk = k_.panel[int(w.dtype)];
    const int64_t m = w.dim(0), k = w.dim(1), n_panels = (m + kPanelRows - 1) / kPanelRows;
    p.panel_bytes = pk.panel_bytes(k);
    p.panels = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(std::aligned_alloc(64, size_t(n_panels) * p.panel_bytes)),
                                        std::free);
    HERD_CHECK(p.panels != nullptr, "out of host memory repacking a ", shape_str(w.shape), " weight");
    const size_t row_bytes = dtype_nbytes(w.dtype, k);
    const auto* wb = static_cast<const uint8_t*>(w.data());
    pool_.parallel_for(n_panels, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        pk.pack(wb + size_t(i * kPanelRows) * row_bytes, row_bytes, int(std::min<int64_t>(kPanelRows, m - i * kPanelRows)), k,
                p.panels.get() + size_t(i) * p.panel_bytes);
    });
  }
  return &p;
}

void FastMatmul::run(const Tensor& x, std::span<const MatmulOut> parts) {
  HERD_CHECK(x.dtype == DType::f32, "matmul input must be f32, is ", dtype_name(x.dtype));
  const int64_t k = x.dim(-1), n = x.numel() / k, nb = k / 32;
  const float* xs = static_cast<const float*>(x.data());

  bool any_quantized = false, any_amx = false;
  std::vector<int64_t> first_chunk{0};  // part p owns chunks [first_chunk[p], first_chunk[p + 1])
  std::vector<const Packed*> packed;    // part p's panels, or null
  for (const MatmulOut& p : parts) {
    const int64_t m = p.w.dim(0);
    HERD_CHECK(p.w.dim(1) == k, "matmul: x has ", k, " columns, w ", shape_str(p.w.shape));
    HERD_CHECK(p.out.numel() == n * m, "matmul: out ", shape_str(p.out.shape), " for ", n, " x ", m);
    HERD_CHECK(is_quantized(p.w.dtype) ? k_.dot_q8[int(p.w.dtype)] != nullptr : k_.dot_f32[int(p.w.dtype)] != nullptr,
               "no CPU kernel for ", dtype_name(p.w.dtype));
    any_quantized |= is_quantized(p.w.dtype);
    any_amx |= amx_takes(p.w, n);
    const int64_t rows = amx_takes(p.w, n) ? kAmxRows : kRows;
    first_chunk.push_back(first_chunk.back() + (m + rows - 1) / rows);
    packed.push_back(panels_of(p.w));
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

  // Each token tile split into its three BF16 parts once, for every F16 or BF16 weight.
  if (any_amx) {
    const int64_t tiles = (n + 15) / 16;
    if (amx_x_.size() < size_t(amx_activation_elems(k, n))) amx_x_.resize(size_t(amx_activation_elems(k, n)));
    auto prepare = [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) amx_prepare_activations(xs, k, n, t, amx_x_.data());
    };
    if (tiles < 2) prepare(0, tiles);
    else pool_.parallel_for(tiles, prepare);
  }

  pool_.parallel_for(first_chunk.back(), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const size_t p = size_t(std::upper_bound(first_chunk.begin(), first_chunk.end(), c) - first_chunk.begin() - 1);
      const Tensor& w = parts[p].w;
      float* ys = static_cast<float*>(parts[p].out.data());
      const int64_t rows = amx_takes(w, n) ? kAmxRows : kRows;
      const int64_t m = w.dim(0), j0 = (c - first_chunk[p]) * rows, j1 = std::min(m, j0 + rows);
      if (const Packed* pw = packed[p]) {
        // Every token against the panel; the panel kernel tiles the tokens itself.
        k_.panel[int(w.dtype)].gemm(k, pw->panels.get() + size_t(c - first_chunk[p]) * pw->panel_bytes, a, n, ys + j0, m,
                                    int(j1 - j0));
        continue;
      }
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
      } else if (amx_takes(w, n)) {
        amx_gemm_rows(w.dtype, k, wb + size_t(j0) * row_bytes, row_bytes, int(j1 - j0), amx_x_.data(), n, ys + j0, m);
      } else {
        const DotF32Fn dot = k_.dot_f32[int(w.dtype)];
        if (const DotF32TileFn tile = k_.dot_f32_tile[int(w.dtype)]) {
          // Every token against the chunk's rows; the kernel tiles rows and tokens itself.
          tile(k, wb + size_t(j0) * row_bytes, row_bytes, int(j1 - j0), xs, k, n, ys + j0, m);
          continue;
        }
        for (int64_t t0 = 0; t0 < n; t0 += kTokens)
          for (int64_t j = j0; j < j1; ++j)
            for (int64_t i = t0; i < std::min(n, t0 + kTokens); ++i) ys[i * m + j] = dot(k, wb + size_t(j) * row_bytes, xs + i * k);
      }
    }
  });
}

}  // namespace herd
