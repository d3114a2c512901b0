// The FP8 E4M3 KV cache on the CPU: the cache holds the codes of k / scales.k and v / scales.v, and
// attention over it equals f32 attention over the values those codes stand for (the reference
// below builds them with the host's own E4M3 conversions), on both the exact and the fast path.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/backend.h"

namespace herd {
namespace {

struct Batch {
  static constexpr int64_t kHeadDim = 64, kHead = 8, kHeadKv = 2, kBlock = 16, kBlocks = 12;
  std::vector<int32_t> qsl{0, 37, 38}, lens{37, 70}, table;  // a 37-token prefill, a decode step at 70
  std::vector<int32_t> slots, pos;
  int64_t n_tokens = 38;
  Batch() {
    // Sequence 0 in blocks 1..3, sequence 1 in blocks 11..7 (reversed): max 5 blocks each.
    table = {1, 2, 3, 0, 0, 11, 10, 9, 8, 7};
    for (int32_t j = 0; j < 37; ++j) slots.push_back(table[size_t(j / kBlock)] * kBlock + j % kBlock);
    slots.push_back(table[size_t(5 + 69 / kBlock)] * kBlock + 69 % kBlock);
    pos.assign(size_t(n_tokens), 0);  // RoPE at position 0 is the identity: the cache gets k as given
  }
};

// Writes k and v (sequence 1's first 69 keys first, then the batch) and returns attention's output.
std::vector<float> run(Backend& be, const std::vector<float>& q, const std::vector<float>& k,
                       const std::vector<float>& v, const std::vector<float>& k_prev, const std::vector<float>& v_prev,
                       KvScales scales) {
  using B = Batch;
  const B b;
  auto make = [&](DType t, Shape s, const void* data) {
    Tensor x = be.alloc(t, std::move(s));
    be.write(x, data, x.nbytes());
    return x;
  };
  auto i32 = [&](const std::vector<int32_t>& v) { return make(DType::i32, {int64_t(v.size())}, v.data()); };
  Tensor kc = be.alloc(be.kv_dtype(), {B::kBlocks, B::kHeadKv, B::kBlock, B::kHeadDim});
  Tensor vc = be.alloc(be.kv_dtype(), {B::kBlocks, B::kHeadKv, B::kBlock, B::kHeadDim});
  const std::vector<float> freq(size_t(B::kHeadDim / 2), 1.f);
  Tensor f = make(DType::f32, {B::kHeadDim / 2}, freq.data());
  // Sequence 1's earlier keys 0..68.
  std::vector<int32_t> prev_slots;
  for (int32_t j = 0; j < 69; ++j) prev_slots.push_back(b.table[size_t(5 + j / B::kBlock)] * B::kBlock + j % B::kBlock);
  Tensor pq = be.alloc(DType::f32, {69, 1, B::kHeadDim});
  Tensor pk = make(DType::f32, {69, B::kHeadKv, B::kHeadDim}, k_prev.data());
  Tensor pv = make(DType::f32, {69, B::kHeadKv, B::kHeadDim}, v_prev.data());
  be.rope_kv_write(pq, pk, pv, i32(std::vector<int32_t>(69, 0)), f, i32(prev_slots), kc, vc, scales);
  Tensor qt = make(DType::f32, {b.n_tokens, B::kHead, B::kHeadDim}, q.data());
  Tensor kt = make(DType::f32, {b.n_tokens, B::kHeadKv, B::kHeadDim}, k.data());
  Tensor vt = make(DType::f32, {b.n_tokens, B::kHeadKv, B::kHeadDim}, v.data());
  be.rope_kv_write(qt, kt, vt, i32(b.pos), f, i32(b.slots), kc, vc, scales);
  Tensor out = be.alloc(DType::f32, {b.n_tokens, B::kHead * B::kHeadDim});
  be.attention(qt, kc, vc, i32(b.qsl), i32(b.lens), make(DType::i32, {2, 5}, b.table.data()), out, scales);
  std::vector<float> y(size_t(out.numel()));
  be.read(out, y.data(), out.nbytes());
  return y;
}

// What an E4M3 cache makes of x with scale s.
std::vector<float> through_fp8(std::vector<float> x, float s) {
  for (float& e : x) e = e4m3_to_f32(f32_to_e4m3(e / s)) * s;
  return x;
}

std::vector<float> randn(size_t n, float sd, std::mt19937& rng) {
  std::normal_distribution<float> d(0.f, sd);
  std::vector<float> v(n);
  for (float& e : v) e = d(rng);
  return v;
}

TEST(KvFp8, AttentionIsF32AttentionOverTheCodesValues) {
  using B = Batch;
  std::mt19937 rng(8);
  const B b;
  const size_t kv = size_t(B::kHeadKv * B::kHeadDim);
  const auto q = randn(size_t(b.n_tokens * B::kHead * B::kHeadDim), 1.f, rng);
  const auto k = randn(size_t(b.n_tokens) * kv, 2.f, rng), v = randn(size_t(b.n_tokens) * kv, 1.f, rng);
  const auto kp = randn(69 * kv, 2.f, rng), vp = randn(69 * kv, 1.f, rng);
  // Scales that put the values' codes across E4M3's range, and scale 1.
  for (KvScales s : {KvScales{0.02f, 0.01f}, KvScales{}}) {
    const auto ref = run(*make_cpu_backend(2, /*exact=*/true), q, through_fp8(k, s.k), through_fp8(v, s.v),
                         through_fp8(kp, s.k), through_fp8(vp, s.v), {});
    const auto plain = run(*make_cpu_backend(2, true), q, k, v, kp, vp, {});
    for (bool exact : {true, false}) {
      const auto got = run(*make_cpu_backend(2, exact, /*kv_fp8=*/true), q, k, v, kp, vp, s);
      float max_err = 0.f, max_plain = 0.f;
      for (size_t i = 0; i < ref.size(); ++i) {
        max_err = std::max(max_err, std::fabs(got[i] - ref[i]));
        max_plain = std::max(max_plain, std::fabs(got[i] - plain[i]));
      }
      // Exact: the same f32 arithmetic but for where the scales apply; fast: f16-widened codes
      // (exact) through the f16 kernels' summation order.
      EXPECT_LT(max_err, 2e-5f) << (exact ? "exact" : "fast") << " scales " << s.k << ", " << s.v;
      // Against attention without FP8 at all: E4M3's rounding of values of about 1 and of sharp
      // scores (measured 0.20 to 0.26), nothing like garbage.
      EXPECT_LT(max_plain, 0.5f) << (exact ? "exact" : "fast");
      EXPECT_GT(max_plain, 1e-3f) << "the cache did not round: is it FP8?";
    }
  }
}

TEST(KvFp8, TheCacheHoldsOneByteCodesAndSaturates) {
  const auto be = make_cpu_backend(1, false, true);
  EXPECT_EQ(be->kv_dtype(), DType::f8_e4m3);
  // One key and value, 1000 with scale 1: saturated at 448; with scale 4: 250 -> 256 (E4M3's
  // neighbours of 250 are 240 and 256) times 4.
  for (auto [scale, want] : {std::pair{1.f, 448.f}, std::pair{4.f, 1024.f}}) {
    const std::vector<float> one(2, 1000.f), zero(2, 0.f), freq{1.f};
    auto make = [&](DType t, Shape s, const void* d) {
      Tensor x = be->alloc(t, std::move(s));
      be->write(x, d, x.nbytes());
      return x;
    };
    const std::vector<int32_t> z{0}, lens{1}, qsl{0, 1}, table{0};
    Tensor kc = be->alloc(DType::f8_e4m3, {1, 1, 1, 2}), vc = be->alloc(DType::f8_e4m3, {1, 1, 1, 2});
    Tensor q = make(DType::f32, {1, 1, 2}, zero.data()), k = make(DType::f32, {1, 1, 2}, zero.data());
    Tensor v = make(DType::f32, {1, 1, 2}, one.data());
    const KvScales s{1.f, scale};
    be->rope_kv_write(q, k, v, make(DType::i32, {1}, z.data()), make(DType::f32, {1}, freq.data()),
                      make(DType::i32, {1}, z.data()), kc, vc, s);
    EXPECT_EQ(vc.nbytes(), 2u);
    Tensor out = be->alloc(DType::f32, {1, 2});
    be->attention(q, kc, vc, make(DType::i32, {2}, qsl.data()), make(DType::i32, {1}, lens.data()),
                  make(DType::i32, {1, 1}, table.data()), out, s);
    std::vector<float> y(2);
    be->read(out, y.data(), 8);
    EXPECT_EQ(y[0], want) << "scale " << scale;
  }
}

}  // namespace
}  // namespace herd
