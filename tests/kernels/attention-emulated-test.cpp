// Both paged-attention kernels run on the CPU through emulated-device.h, against the CPU backend's
// attention: the tensor-core one (kernels/flash-attention-kernel.cuh: fragment layouts, causal masks,
// GQA row mapping, block-table gathers, key splits, FP8 widening) within the bound of its bf16
// probabilities, and the f32 one (kernels/paged-attention-kernel.cuh, the decode path, BF16 and FP8
// caches) to f32 rounding. Checked in CI, where no GPU is; the same kernels run on the device in
// cuda-backend-test.cpp (label gpu).
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
#include "kernels/flash-attention-kernel.cuh"
#include "kernels/paged-attention-kernel.cuh"
#include "paged-batch.h"

namespace herd {
namespace {

namespace fk = kernels::flash;
namespace pk = kernels::paged;

enum class Kernel { flash, paged };

struct Case {
  std::string name;
  int n_head, n_head_kv, head_dim, block_size;
  std::vector<SeqSpec> seqs;
  int n_splits = 1;
  bool fp8 = false;
  float q_scale = 1.f;
};

std::vector<float> normal(size_t n, uint32_t seed, float stddev) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A kernel on the emulated device, splits merged as attention_combine() does; returns out.
template <int D, typename TC>
std::vector<float> run_kernel(Kernel kernel, const Case& c, const PagedBatch& b, const std::vector<float>& q,
                              const std::vector<TC>& kc, const std::vector<TC>& vc, float scale, float v_scale) {
  const int n_tokens = int(b.n_tokens), group = c.n_head / c.n_head_kv;
  const size_t n_out = size_t(n_tokens) * c.n_head * D;
  std::vector<float> out(n_out, NAN), part_o(n_out * size_t(c.n_splits), NAN),
      part_ml(size_t(n_tokens) * c.n_head * 2 * size_t(c.n_splits), NAN);
  int block_shift = 0;
  while ((1 << block_shift) < c.block_size) ++block_shift;
  const int rows = kernel == Kernel::flash ? fk::kBlockM : pk::kRowsPerBlock;
  const dim3 grid(unsigned(kernels::attention_grid_tiles(n_tokens, group, b.n_seqs, rows)), unsigned(c.n_head_kv),
                  unsigned(c.n_splits));
  const int64_t stride = int64_t(c.n_head) * D;
  if (kernel == Kernel::flash) {
    kernels::emu::launch(grid, fk::kThreads, [&] {
      fk::flash_attention_kernel<D, TC>(q.data(), kc.data(), vc.data(), b.qsl.data(), b.seq_lens.data(),
                                        b.block_table.data(), out.data(), part_o.data(), part_ml.data(), n_tokens,
                                        int(b.n_seqs), c.n_head, c.n_head_kv, block_shift, int(b.n_blocks),
                                        int(b.max_blocks), stride, stride, scale * fk::kLog2e, v_scale);
    });
  } else {
    kernels::emu::launch(grid, pk::kThreads, [&] {
      pk::paged_attention_kernel<D, TC>(q.data(), kc.data(), vc.data(), b.qsl.data(), b.seq_lens.data(),
                                        b.block_table.data(), out.data(), part_o.data(), part_ml.data(), n_tokens,
                                        int(b.n_seqs), c.n_head, c.n_head_kv, block_shift, int(b.n_blocks),
                                        int(b.max_blocks), stride, stride, scale, v_scale);
    });
  }
  if (c.n_splits == 1) return out;
  // out = sum_s o_s e^(m_s - M) / sum_s l_s e^(m_s - M): the softmax of all keys from its splits.
  for (size_t th = 0; th < size_t(n_tokens) * c.n_head; ++th) {
    float mx = -INFINITY;
    for (int s = 0; s < c.n_splits; ++s) mx = std::max(mx, part_ml[(s * size_t(n_tokens) * c.n_head + th) * 2]);
    for (int d = 0; d < D; ++d) {
      double sum = 0, acc = 0;
      for (int s = 0; s < c.n_splits && mx != -INFINITY; ++s) {
        const size_t slot = s * size_t(n_tokens) * c.n_head + th;
        if (part_ml[slot * 2] == -INFINITY) continue;
        const double w = std::exp(double(part_ml[slot * 2]) - mx);
        sum += part_ml[slot * 2 + 1] * w;
        acc += part_o[slot * D + size_t(d)] * w;
      }
      out[th * D + size_t(d)] = sum > 0 ? float(acc / sum) : 0.f;
    }
  }
  return out;
}

template <int D>
void check(Kernel kernel, const Case& c, uint32_t seed) {
  const PagedBatch b = make_batch(c.seqs, c.block_size, seed);
  const Shape cache_shape = {b.n_blocks, c.n_head_kv, c.block_size, D};
  const size_t n_cache = size_t(shape_numel(cache_shape));
  // Values in every slot, seen or not; q rounded to bf16, as the tensor-core kernel multiplies it.
  auto q = normal(size_t(b.n_tokens) * c.n_head * D, seed + 1, c.q_scale);
  for (float& x : q) x = bf16_to_f32(f32_to_bf16(x));
  const auto kf = normal(n_cache, seed + 2, c.fp8 ? 3.f : 1.f), vf = normal(n_cache, seed + 3, 1.f);
  const KvScales scales = c.fp8 ? KvScales{0.05f, 0.02f} : KvScales{};

  // The reference: the CPU backend's exact attention over the same cache values (f32, or the same
  // E4M3 codes), once with V and once with |V| for the tolerance.
  const auto cpu = make_cpu_backend(1, /*exact=*/true, /*kv_fp8=*/c.fp8);
  auto tensor = [&](DType t, const Shape& shape, const void* data) {
    Tensor x = cpu->alloc(t, shape);
    cpu->write(x, data, x.nbytes());
    return x;
  };
  std::vector<uint8_t> k8(n_cache), v8(n_cache), v8_abs(n_cache);
  std::vector<__nv_bfloat16> kb(n_cache), vb(n_cache);
  std::vector<float> kr(n_cache), vr(n_cache), vr_abs(n_cache);
  std::vector<__nv_fp8_e4m3> kq(n_cache), vq(n_cache);
  for (size_t i = 0; i < n_cache; ++i) {
    kq[i] = __nv_fp8_e4m3(kf[i] / scales.k);
    vq[i] = __nv_fp8_e4m3(vf[i] / scales.v);
    std::memcpy(&k8[i], &kq[i], 1);
    std::memcpy(&v8[i], &vq[i], 1);
    v8_abs[i] = v8[i] & 0x7f;
    kb[i] = __float2bfloat16_rn(kf[i]);
    vb[i] = __float2bfloat16_rn(vf[i]);
    kr[i] = float(kb[i]);
    vr[i] = float(vb[i]);
    vr_abs[i] = std::fabs(vr[i]);
  }
  const DType ct = c.fp8 ? DType::f8_e4m3 : DType::f32;
  Tensor kt = tensor(ct, cache_shape, c.fp8 ? static_cast<const void*>(k8.data()) : kr.data());
  Tensor vt = tensor(ct, cache_shape, c.fp8 ? static_cast<const void*>(v8.data()) : vr.data());
  Tensor vt_abs = tensor(ct, cache_shape, c.fp8 ? static_cast<const void*>(v8_abs.data()) : vr_abs.data());
  Tensor qt = tensor(DType::f32, {b.n_tokens, c.n_head, D}, q.data());
  Tensor qsl = tensor(DType::i32, {b.n_seqs + 1}, b.qsl.data()), sl = tensor(DType::i32, {b.n_seqs}, b.seq_lens.data());
  Tensor bt = tensor(DType::i32, {b.n_seqs, b.max_blocks}, b.block_table.data());
  Tensor out = cpu->alloc(DType::f32, {b.n_tokens, int64_t(c.n_head) * D});
  std::vector<float> want(size_t(out.numel())), abs_v(want.size());
  cpu->attention(qt, kt, vt, qsl, sl, bt, out, scales);
  cpu->read(out, want.data(), out.nbytes());
  cpu->attention(qt, kt, vt_abs, qsl, sl, bt, out, scales);
  cpu->read(out, abs_v.data(), out.nbytes());

  const float scale = scales.k / std::sqrt(float(D));
  const auto got = c.fp8 ? run_kernel<D>(kernel, c, b, q, kq, vq, scale, scales.v)
                         : run_kernel<D>(kernel, c, b, q, kb, vb, scale, 1.f);
  // The f32 kernel: the GPU test's f32 tolerance (summation order, expf, rescaling).
  std::vector<float> tol = flash_tolerance(want, abs_v);
  if (kernel == Kernel::paged)
    for (size_t i = 0; i < tol.size(); ++i) tol[i] = 2e-5f + 1e-4f * std::fabs(want[i]);
  size_t n_bad = 0, worst = 0;
  double worst_excess = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - want[i]);
    if (!(err <= tol[i])) {
      ++n_bad;
      if (std::isnan(err) || err - tol[i] > worst_excess) {
        worst_excess = std::isnan(err) ? 1e30 : err - tol[i];
        worst = i;
      }
    }
  }
  EXPECT_EQ(n_bad, 0u) << (kernel == Kernel::flash ? "tensor cores, " : "f32, ") << c.name << ": " << n_bad << " of " << got.size() << " off; worst at " << worst << " (token "
                       << worst / (size_t(c.n_head) * D) << "): got " << got[worst] << ", want " << want[worst];
}

// Both kernels on the case.
void check(const Case& c, uint32_t seed) {
  for (Kernel k : {Kernel::flash, Kernel::paged}) {
    switch (c.head_dim) {
      case 32: check<32>(k, c, seed); break;
      case 64: check<64>(k, c, seed); break;
      case 128: check<128>(k, c, seed); break;
      default: FAIL() << "head_dim " << c.head_dim;
    }
  }
}

// Small shapes (every thread of a block is an OS thread here), chosen to cross every boundary: rows
// past a 64-row tile, keys past a 64-key tile and a KV block, GQA groups that do not divide 64,
// sequences with no queries, a decode row beside a prefill chunk, key splits that end mid-tile.
TEST(AttentionEmulated, PrefillFromZeroOneToOne) {
  check({"37 tokens from 0, 2/2 heads, hd 64", 2, 2, 64, 16, {{37, 37}}}, 1);
}

TEST(AttentionEmulated, PrefillAcrossTilesGqa) {
  check({"131 tokens from 0, 4:1, hd 128", 4, 1, 128, 16, {{131, 131}}, 1, false, 2.f}, 2);
}

TEST(AttentionEmulated, MixedBatchSmallHeads) {
  check({"mixed, 3:1, hd 32, block 8", 6, 2, 32, 8, {{70, 70}, {50, 1}, {8, 8}, {5, 0}, {90, 21}}}, 3);
}

TEST(AttentionEmulated, ChunkAfterCachedKeysWithSplits) {
  check({"a chunk of 9 after 150, 8:1, hd 64, 3 splits", 8, 1, 64, 32, {{159, 9}, {3, 3}}, 3, false, 3.f}, 4);
}

TEST(AttentionEmulated, MaskEdgeAtTheTileEnd) {
  // Row 0 of a chunk after 62 keys sees keys 0..62: the first key tile ends one key past it, the
  // one tile where only the mask keeps key 63 out.
  check({"a chunk of 20 after 62, 2/2 heads, hd 64", 2, 2, 64, 16, {{82, 20}}}, 7);
  // The same edge in a later row tile of a 4:1 group: row 64 is token 16 at position 46 + 16 = 62.
  check({"a chunk of 40 after 46, 4:1, hd 32", 4, 1, 32, 16, {{86, 40}}}, 8);
}

TEST(AttentionEmulated, DecodeBatchWithSplits) {
  check({"6 decode rows, 4:1, hd 64, 4 splits", 8, 2, 64, 16, {{1, 1}, {17, 1}, {200, 1}, {64, 1}, {3, 1}, {129, 1}}, 4},
        9);
}

TEST(AttentionEmulated, Fp8Cache) {
  check({"FP8 cache, 2:1, hd 64", 4, 2, 64, 16, {{80, 80}, {40, 1}}, 1, true}, 5);
  check({"FP8 cache, 2 splits", 2, 1, 32, 16, {{100, 30}}, 2, true}, 6);
  check({"FP8 cache, decode, 3 splits", 4, 1, 128, 16, {{150, 1}, {40, 1}}, 3, true}, 10);
}

}  // namespace
}  // namespace herd
