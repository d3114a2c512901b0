// CPU backend ops against hand-computed values (the CUDA kernels are then tested against these ops).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/backend.h"

namespace herd {
namespace {

class CpuOps : public testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_cpu_backend(3, /*exact=*/true);  // the reference ops

  Tensor make(DType t, Shape s, const void* data) {
    Tensor x = be->alloc(t, std::move(s));
    be->write(x, data, x.nbytes());
    return x;
  }
  Tensor f32(Shape s, std::vector<float> v) { return make(DType::f32, std::move(s), v.data()); }
  Tensor i32(std::vector<int32_t> v) { return make(DType::i32, {int64_t(v.size())}, v.data()); }
  std::vector<float> get(const Tensor& t) {
    std::vector<float> v(size_t(t.numel()));
    be->read(t, v.data(), t.nbytes());
    return v;
  }
};

TEST_F(CpuOps, RmsNorm) {
  // rows (3, 4) and (1, -1): rms 3.5355339 and 1.
  Tensor x = f32({2, 2}, {3, 4, 1, -1}), w = f32({2}, {1, 2}), out = be->alloc(DType::f32, {2, 2});
  be->rms_norm(x, w, 0.f, out);
  const auto y = get(out);
  EXPECT_NEAR(y[0], 3 / std::sqrt(12.5), 1e-6);
  EXPECT_NEAR(y[1], 2 * 4 / std::sqrt(12.5), 1e-6);
  EXPECT_NEAR(y[2], 1, 1e-6);
  EXPECT_NEAR(y[3], -2, 1e-6);
}

TEST_F(CpuOps, AddRmsNormUpdatesTheResidualAndNormalisesIt) {
  // x + y = rows (3, 4) and (1, -1), as in RmsNorm: rms 3.5355339 and 1. out is y's memory, as in
  // the model (the block output is consumed by the add before the norm overwrites it).
  Tensor x = f32({2, 2}, {1, 4, 2, -3}), y = f32({2, 2}, {2, 0, -1, 2}), w = f32({2}, {1, 2});
  be->add_rms_norm(x, y, w, 0.f, y);
  EXPECT_EQ(get(x), (std::vector<float>{3, 4, 1, -1}));
  const auto out = get(y);
  EXPECT_NEAR(out[0], 3 / std::sqrt(12.5), 1e-6);
  EXPECT_NEAR(out[1], 2 * 4 / std::sqrt(12.5), 1e-6);
  EXPECT_NEAR(out[2], 1, 1e-6);
  EXPECT_NEAR(out[3], -2, 1e-6);
  // eps enters under the root: row (1, 1) with eps 3 has scale 1 / sqrt(1 + 3) = 1/2.
  Tensor x1 = f32({1, 2}, {0, 1}), y1 = f32({1, 2}, {1, 0}), out1 = be->alloc(DType::f32, {1, 2});
  be->add_rms_norm(x1, y1, f32({2}, {1, 2}), 3.f, out1);
  EXPECT_NEAR(get(out1)[0], 0.5, 1e-6);
  EXPECT_NEAR(get(out1)[1], 1.0, 1e-6);
}

TEST_F(CpuOps, MatmulWithEveryWeightType) {
  // x [2, 3] * w[2, 3]^T, small integers exact in every dtype.
  const std::vector<float> wv = {1, 2, 3, -1, 0, 4};
  for (DType t : {DType::f32, DType::f16, DType::bf16}) {
    std::vector<uint16_t> h;
    for (float v : wv) h.push_back(t == DType::bf16 ? f32_to_bf16(v) : f32_to_f16(v));
    Tensor w = t == DType::f32 ? f32({2, 3}, wv) : make(t, {2, 3}, h.data());
    Tensor x = f32({2, 3}, {1, 1, 1, 2, -1, 0.5}), out = be->alloc(DType::f32, {2, 2});
    be->matmul(x, w, out);
    EXPECT_EQ(get(out), (std::vector<float>{6, 3, 1.5, 0})) << dtype_name(t);
  }
}

TEST_F(CpuOps, MatmulLongRowsMatchDouble) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d;
  const int64_t n = 5, k = 1037, m = 29;  // k not a multiple of the 16-lane blocks
  std::vector<float> xv(size_t(n * k)), wv(size_t(m * k));
  for (auto& v : xv) v = d(rng);
  for (auto& v : wv) v = d(rng);
  Tensor x = f32({n, k}, xv), w = f32({m, k}, wv), out = be->alloc(DType::f32, {n, m});
  be->matmul(x, w, out);
  const auto y = get(out);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      double s = 0;
      for (int64_t t = 0; t < k; ++t) s += double(xv[size_t(i * k + t)]) * wv[size_t(j * k + t)];
      EXPECT_NEAR(y[size_t(i * m + j)], s, 1e-3) << i << "," << j;
    }
}

// An act-ordered weight (stored column j is input column perm[j]) multiplies like the same weight
// with its columns put back in input order, on the exact and the fast path, alone and beside
// weights of another order in one shared product.
TEST(CpuBackend, WeightsInAnotherColumnOrderMultiplyTheInputInThatOrder) {
  constexpr int64_t kIn = 96, kOut = 5, kTok = 3;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  std::vector<float> stored(kOut * kIn), x(kTok * kIn);
  for (float& v : stored) v = nd(rng);
  for (float& v : x) v = nd(rng);
  std::vector<int32_t> perm(kIn);
  for (int64_t i = 0; i < kIn; ++i) perm[size_t(i)] = int32_t((i * 37) % kIn);  // 37 is prime to 96
  std::vector<float> in_order(kOut * kIn);
  for (int64_t o = 0; o < kOut; ++o)
    for (int64_t j = 0; j < kIn; ++j) in_order[size_t(o * kIn + perm[size_t(j)])] = stored[size_t(o * kIn + j)];
  for (bool exact : {true, false}) {
    auto be = make_cpu_backend(2, exact);
    TensorView sv{DType::f32, {kOut, kIn}, stored.data(), perm.data()}, iv{DType::f32, {kOut, kIn}, in_order.data()};
    const Tensor w_perm = be->upload_weight(sv), w_plain = be->upload_weight(iv);
    Tensor xt = be->alloc(DType::f32, {kTok, kIn});
    be->write(xt, x.data(), xt.nbytes());
    Tensor a = be->alloc(DType::f32, {kTok, kOut}), b = be->alloc(DType::f32, {kTok, kOut}),
           c = be->alloc(DType::f32, {kTok, kOut});
    const MatmulOut parts[] = {{w_perm, a}, {w_plain, b}, {w_perm, c}};
    be->matmul_shared(xt, parts);
    std::vector<float> ya(kTok * kOut), yb(kTok * kOut), yc(kTok * kOut);
    be->read(a, ya.data(), a.nbytes());
    be->read(b, yb.data(), b.nbytes());
    be->read(c, yc.data(), c.nbytes());
    for (size_t i = 0; i < ya.size(); ++i) {
      EXPECT_NEAR(ya[i], yb[i], 1e-4f * (1.f + std::fabs(yb[i]))) << (exact ? "exact " : "fast ") << i;
      EXPECT_EQ(ya[i], yc[i]);
    }
  }
}

TEST_F(CpuOps, SiluMul) {
  Tensor g = f32({3}, {0, 1, -2}), u = f32({3}, {5, 2, 1}), out = be->alloc(DType::f32, {3});
  be->silu_mul(g, u, out);
  const auto y = get(out);
  EXPECT_EQ(y[0], 0.f);
  EXPECT_NEAR(y[1], 2 / (1 + std::exp(-1.0)), 1e-6);
  EXPECT_NEAR(y[2], -2 / (1 + std::exp(2.0)), 1e-6);
}

TEST_F(CpuOps, EmbedAlsoPicksActivationRows) {
  const std::vector<uint16_t> table = {f32_to_bf16(1), f32_to_bf16(2), f32_to_bf16(3), f32_to_bf16(4)};
  Tensor t = make(DType::bf16, {2, 2}, table.data()), out = be->alloc(DType::f32, {3, 2});
  be->embed(t, i32({1, 0, 1}), out);
  EXPECT_EQ(get(out), (std::vector<float>{3, 4, 1, 2, 3, 4}));
  Tensor picked = be->alloc(DType::f32, {1, 2});
  be->embed(out, i32({1}), picked);
  EXPECT_EQ(get(picked), (std::vector<float>{1, 2}));
}

TEST_F(CpuOps, RopeKvWriteRotatesQAndKAndWritesThePagedCache) {
  // head_dim 2 (one pair), 2 query and 2 KV heads, f = pi/2: position 1 is a quarter turn
  // (a, b) -> (-b, a), position 2 a half turn (a, b) -> (-a, -b), position 0 the identity.
  // Block size 2: slot 3 is block 1, offset 1; slot 0 is block 0, offset 0; slot -1 is skipped.
  Tensor q = f32({3, 2, 2}, {1, 2, 3, 4, /**/ 1, 0, 0, 1, /**/ 1, 1, 2, 2});
  Tensor k = f32({3, 2, 2}, {5, 6, 7, 8, /**/ 2, 3, 0, 1, /**/ 4, 5, 1, 2});
  Tensor v = f32({3, 2, 2}, {7, 8, 9, 10, /**/ 11, 12, 13, 14, /**/ 6, 7, 15, 16});
  Tensor kc = be->alloc(DType::f32, {2, 2, 2, 2}), vc = be->alloc(DType::f32, {2, 2, 2, 2});
  be->rope_kv_write(q, k, v, i32({1, 2, 0}), f32({1}, {float(M_PI / 2)}), i32({3, -1, 0}), kc, vc);
  auto expect_near = [](const std::vector<float>& got, const std::vector<float>& want, const char* what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << what << " [" << i << "]";
  };
  expect_near(get(q), {-2, 1, -4, 3, /**/ -1, 0, 0, -1, /**/ 1, 1, 2, 2}, "q");
  expect_near(get(k), {-6, 5, -8, 7, /**/ -2, -3, 0, -1, /**/ 4, 5, 1, 2}, "k (the skipped token's too)");
  // Cache [block, kv head, offset, pair]: token 2 at (0, h, 0), token 0 at (1, h, 1).
  expect_near(get(kc), {4, 5, 0, 0, 1, 2, 0, 0, /**/ 0, 0, -6, 5, 0, 0, -8, 7}, "k cache");
  expect_near(get(vc), {6, 7, 0, 0, 15, 16, 0, 0, /**/ 0, 0, 7, 8, 0, 0, 9, 10}, "v cache");
}

TEST_F(CpuOps, PagedCausalGqaAttention) {
  // Block size 1 so that sequence A's two keys sit in shuffled blocks 2 then 1; B's one key in
  // block 3. 2 query heads share 1 KV head, head_dim 2.
  Tensor kc = be->alloc(DType::f32, {4, 1, 1, 2}), vc = be->alloc(DType::f32, {4, 1, 1, 2});
  Tensor k = f32({4, 1, 2}, {1, 0, 0, 1, 1, 1, 9, 9}), v = f32({4, 1, 2}, {10, 0, 0, 20, 3, 3, 9, 9});
  // Position 0 turns by 0 (cos 1, sin 0 exactly): the keys reach the cache unrotated.
  Tensor q0 = be->alloc(DType::f32, {4, 1, 2});
  be->rope_kv_write(q0, k, v, i32({0, 0, 0, 0}), f32({1}, {1.f}), i32({2, 1, 3, -1}), kc, vc);  // slot -1 skipped
  EXPECT_EQ(get(kc)[0], 0.f);                      // the null block stays untouched
  // A: 2 query tokens (positions 0, 1); B: 1 query token (position 0).
  const float s = 2.f;
  Tensor q = f32({3, 2, 2}, {5, 5, -3, 1, s, 0, 0, 0, 7, -7, 1, 2});
  Tensor out = be->alloc(DType::f32, {3, 4});
  be->attention(q, kc, vc, i32({0, 2, 3}), i32({2, 1}), make(DType::i32, {2, 2}, std::vector<int32_t>{2, 1, 3, 0}.data()),
                out);
  const auto y = get(out);
  // A, token 0 sees only key 0: output v0 for both heads.
  EXPECT_NEAR(y[0], 10, 1e-5);
  EXPECT_NEAR(y[1], 0, 1e-5);
  EXPECT_NEAR(y[2], 10, 1e-5);
  // A, token 1, head 0: q = (s, 0), scores (s / sqrt 2, 0); head 1: q = 0, uniform.
  const double a = std::exp(s / std::sqrt(2.0)), w0 = a / (a + 1), w1 = 1 / (a + 1);
  EXPECT_NEAR(y[4], 10 * w0, 1e-5);
  EXPECT_NEAR(y[5], 20 * w1, 1e-5);
  EXPECT_NEAR(y[6], 5, 1e-5);
  EXPECT_NEAR(y[7], 10, 1e-5);
  // B sees only its own key.
  for (int i = 8; i < 12; ++i) EXPECT_NEAR(y[size_t(i)], 3, 1e-5);
}

TEST_F(CpuOps, ArgmaxTakesTheFirstMaximum) {
  Tensor x = f32({2, 4}, {1, 5, 5, 2, -1, -3, -0.5f, -2}), out = be->alloc(DType::i32, {2});
  be->argmax(x, out);
  std::vector<int32_t> ids(2);
  be->read(out, ids.data(), 8);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 2}));
}

}  // namespace
}  // namespace herd
