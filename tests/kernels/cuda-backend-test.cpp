// Every op of the CUDA backend against the CPU backend (the reference), on fresh random inputs over
// awkward shapes: odd lengths, GQA 1:1 / 3:1 / 4:1 / 8:1, head_dim 64 and 128, contexts past 1000
// and up to 32K, f32 / f16 / bf16 weights. Skips cleanly without a GPU (CI).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda-backend.h"
#include "common/check.h"
#include "common/dtype.h"

namespace herd {
namespace {

class CudaVsCpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
    gpu_ = make_cuda_backend(0);
    cpu_ = make_cpu_backend(0);
  }

  // The same host data as a tensor of both backends. Weights go through upload_weight, the rest
  // through alloc + write, as the model does.
  struct Both {
    Tensor cpu, gpu;
  };
  // The CPU backend aliases a weight's host bytes (they are a mapped file in real use), so the
  // CPU side gets its own copy: callers pass temporaries.
  Both weight(DType dtype, Shape shape, const void* data) {
    TensorView v{dtype, shape, data};
    Tensor cpu = cpu_->alloc(dtype, std::move(shape));
    cpu_->write(cpu, data, cpu.nbytes());
    return {std::move(cpu), gpu_->upload_weight(v)};
  }
  Both input(DType dtype, const Shape& shape, const void* data) {
    Both b{cpu_->alloc(dtype, shape), gpu_->alloc(dtype, shape)};
    cpu_->write(b.cpu, data, b.cpu.nbytes());
    gpu_->write(b.gpu, data, b.gpu.nbytes());
    return b;
  }
  Both output(DType dtype, const Shape& shape) { return {cpu_->alloc(dtype, shape), gpu_->alloc(dtype, shape)}; }

  template <typename T>
  std::vector<T> read(Backend& b, const Tensor& t) {
    std::vector<T> v(t.nbytes() / sizeof(T));
    b.read(t, v.data(), t.nbytes());
    return v;
  }
  std::vector<float> cpu_f32(const Both& t) { return read<float>(*cpu_, t.cpu); }
  std::vector<float> gpu_f32(const Both& t) { return read<float>(*gpu_, t.gpu); }

  std::unique_ptr<Backend> gpu_, cpu_;
};

std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<float> random_normal(size_t n, uint32_t seed, float stddev = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Host bytes of f32 values stored as dtype (round to nearest even).
std::vector<uint8_t> encode(const std::vector<float>& v, DType dtype) {
  std::vector<uint8_t> out(v.size() * dtype_size(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::f32) {
      std::memcpy(out.data() + i * 4, &v[i], 4);
    } else {
      const uint16_t h = dtype == DType::bf16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
      std::memcpy(out.data() + i * 2, &h, 2);
    }
  }
  return out;
}

// v rounded to dtype and back: values the device's own rounding leaves unchanged.
std::vector<float> rounded(std::vector<float> v, DType dtype) {
  for (float& x : v) {
    if (dtype == DType::bf16) x = bf16_to_f32(f32_to_bf16(x));
    if (dtype == DType::f16) x = f16_to_f32(f32_to_f16(x));
  }
  return v;
}

// |got - want| <= atol + rtol * |want| (or <= tol[i] when a per-element bound is given), reporting
// the count and the worst element rather than thousands of lines.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, float atol, float rtol,
                  const std::string& what, const std::vector<float>* tol = nullptr) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t n_bad = 0, worst = 0;
  double worst_excess = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    const double bound = tol ? (*tol)[i] : atol + rtol * std::fabs(want[i]);
    const double err = std::fabs(double(got[i]) - double(want[i]));
    const bool bad = !(err <= bound);  // NaN counts as bad
    if (bad) ++n_bad;
    if (bad && (std::isnan(err) || err - bound > worst_excess)) {
      worst_excess = std::isnan(err) ? 1e30 : err - bound;
      worst = i;
    }
  }
  EXPECT_EQ(n_bad, 0u) << what << ": " << n_bad << " of " << got.size() << " elements off; worst at " << worst
                       << ": got " << got[worst] << ", want " << want[worst];
}

const DType kWeightTypes[] = {DType::f32, DType::f16, DType::bf16};

// --- embed -------------------------------------------------------------------

TEST_F(CudaVsCpu, EmbedGathersRowsOfEveryDtype) {
  for (DType dtype : kWeightTypes) {
    for (int64_t n_embd : {4096, 97}) {
      const int64_t n_vocab = 1001;
      const auto table = encode(random_floats(size_t(n_vocab * n_embd), 1), dtype);
      std::vector<int32_t> ids = {0, 1000, 7, 7, 512, 999, 3, 0, 123, 1000, 44, 45, 46};
      auto w = weight(dtype, {n_vocab, n_embd}, table.data());
      auto id = input(DType::i32, {int64_t(ids.size())}, ids.data());
      auto out = output(DType::f32, {int64_t(ids.size()), n_embd});
      cpu_->embed(w.cpu, id.cpu, out.cpu);
      gpu_->embed(w.gpu, id.gpu, out.gpu);
      expect_close(gpu_f32(out), cpu_f32(out), 0.f, 0.f, str_cat("embed ", dtype_name(dtype), " n_embd ", n_embd));
    }
  }
}

// --- rms_norm ----------------------------------------------------------------

TEST_F(CudaVsCpu, RmsNormMatchesOverShapesAndWeightTypes) {
  struct Case {
    int64_t n, d;
  };
  for (DType dtype : kWeightTypes) {
    for (Case c : {Case{1, 4096}, Case{7, 4096}, Case{5, 4099}, Case{3, 3}, Case{64, 2048}}) {
      const auto x = random_normal(size_t(c.n * c.d), 2, 3.f);
      const auto wv = encode(random_floats(size_t(c.d), 3, 0.5f, 1.5f), dtype);
      auto xt = input(DType::f32, {c.n, c.d}, x.data());
      auto w = weight(dtype, {c.d}, wv.data());
      auto out = output(DType::f32, {c.n, c.d});
      cpu_->rms_norm(xt.cpu, w.cpu, 1e-5f, out.cpu);
      gpu_->rms_norm(xt.gpu, w.gpu, 1e-5f, out.gpu);
      expect_close(gpu_f32(out), cpu_f32(out), 1e-6f, 1e-5f,
                   str_cat("rms_norm ", dtype_name(dtype), " [", c.n, ", ", c.d, "]"));
    }
  }
}

// --- matmul ------------------------------------------------------------------

struct MatmulCase {
  int64_t n, k, m;
};
const MatmulCase kMatmulCases[] = {{1, 4096, 515}, {17, 1000, 257}, {7, 257, 3}, {64, 512, 384}, {3, 4099, 33}};

TEST_F(CudaVsCpu, MatmulF32WeightsIsF32Exact) {
  for (const MatmulCase& c : kMatmulCases) {
    const auto x = random_floats(size_t(c.n * c.k), 4);
    const auto wf = random_floats(size_t(c.m * c.k), 5);
    auto xt = input(DType::f32, {c.n, c.k}, x.data());
    auto w = weight(DType::f32, {c.m, c.k}, wf.data());
    auto out = output(DType::f32, {c.n, c.m});
    cpu_->matmul(xt.cpu, w.cpu, out.cpu);
    gpu_->matmul(xt.gpu, w.gpu, out.gpu);
    std::vector<float> tol(static_cast<size_t>(c.n * c.m));
    for (int64_t i = 0; i < c.n; ++i)
      for (int64_t j = 0; j < c.m; ++j) {
        double s = 0;
        for (int64_t l = 0; l < c.k; ++l) s += std::fabs(x[size_t(i * c.k + l)] * wf[size_t(j * c.k + l)]);
        tol[size_t(i * c.m + j)] = float(2e-6 * s + 1e-6);  // f32 sums in another order; no TF32
      }
    expect_close(gpu_f32(out), cpu_f32(out), 0, 0, str_cat("matmul f32 ", c.n, "x", c.k, "x", c.m), &tol);
  }
}

TEST_F(CudaVsCpu, Matmul16BitWeights) {
  for (DType dtype : {DType::f16, DType::bf16}) {
    for (const MatmulCase& c : kMatmulCases) {
      const auto wf = rounded(random_floats(size_t(c.m * c.k), 6), dtype);
      const auto wbytes = encode(wf, dtype);
      auto w = weight(dtype, {c.m, c.k}, wbytes.data());
      // exact: x already representable in dtype, so only the summation order differs.
      // rounded: fresh f32 x, which the backend rounds to dtype (relative error 2^-8 for bf16,
      // 2^-11 for f16, per element) before the tensor cores see it.
      for (bool exact : {true, false}) {
        auto x = random_floats(size_t(c.n * c.k), exact ? 7 : 8);
        if (exact) x = rounded(x, dtype);
        auto xt = input(DType::f32, {c.n, c.k}, x.data());
        auto out = output(DType::f32, {c.n, c.m});
        cpu_->matmul(xt.cpu, w.cpu, out.cpu);
        gpu_->matmul(xt.gpu, w.gpu, out.gpu);
        const double rel = exact ? 2e-5 : (dtype == DType::bf16 ? 1.0 / 256 : 1.0 / 2048) * 1.05 + 2e-5;
        std::vector<float> tol(static_cast<size_t>(c.n * c.m));
        for (int64_t i = 0; i < c.n; ++i)
          for (int64_t j = 0; j < c.m; ++j) {
            double s = 0;
            for (int64_t l = 0; l < c.k; ++l) s += std::fabs(x[size_t(i * c.k + l)] * wf[size_t(j * c.k + l)]);
            tol[size_t(i * c.m + j)] = float(rel * s + 1e-6);
          }
        expect_close(gpu_f32(out), cpu_f32(out), 0, 0,
                     str_cat("matmul ", dtype_name(dtype), exact ? " exact " : " rounded ", c.n, "x", c.k, "x", c.m),
                     &tol);
      }
    }
  }
}

// --- rope --------------------------------------------------------------------

TEST_F(CudaVsCpu, RopeMatchesAtLongPositions) {
  for (int64_t head_dim : {64, 128}) {
    for (int64_t n_head : {32, 8, 3}) {
      const int64_t n_tokens = 37, half = head_dim / 2;
      std::vector<int32_t> pos(static_cast<size_t>(n_tokens));
      std::mt19937 rng(9);
      for (int64_t t = 0; t < n_tokens; ++t) pos[size_t(t)] = t < 10 ? int32_t(t) : int32_t(rng() % 32768);
      pos.back() = 131071;
      std::vector<float> inv_freq(static_cast<size_t>(half));
      for (int64_t i = 0; i < half; ++i) inv_freq[size_t(i)] = std::pow(500000.f, -float(2 * i) / float(head_dim));
      const auto x = random_normal(size_t(n_tokens * n_head * head_dim), 10);
      auto xt = input(DType::f32, {n_tokens, n_head, head_dim}, x.data());
      auto p = input(DType::i32, {n_tokens}, pos.data());
      auto f = input(DType::f32, {half}, inv_freq.data());
      cpu_->rope(xt.cpu, p.cpu, f.cpu);
      gpu_->rope(xt.gpu, p.gpu, f.gpu);
      expect_close(gpu_f32(xt), cpu_f32(xt), 2e-6f, 1e-5f, str_cat("rope head_dim ", head_dim, " n_head ", n_head));
    }
  }
}

// --- kv_write ----------------------------------------------------------------

TEST_F(CudaVsCpu, KvWriteScattersRowsByPosition) {
  for (int64_t head_dim : {64, 128}) {
    const int64_t n_ctx = 1500, n_head_kv = 8, n_tokens = 37, row = n_head_kv * head_dim;
    std::vector<int32_t> pos(static_cast<size_t>(n_ctx));
    std::iota(pos.begin(), pos.end(), 0);
    std::shuffle(pos.begin(), pos.end(), std::mt19937(11));
    pos.resize(size_t(n_tokens));  // distinct, unsorted, anywhere in the cache
    const auto k = random_normal(size_t(n_tokens * row), 12), v = random_normal(size_t(n_tokens * row), 13);
    auto kt = input(DType::f32, {n_tokens, n_head_kv, head_dim}, k.data());
    auto vt = input(DType::f32, {n_tokens, n_head_kv, head_dim}, v.data());
    auto p = input(DType::i32, {n_tokens}, pos.data());
    auto kc = output(DType::f32, {n_ctx, n_head_kv, head_dim});
    auto vc = output(DType::f32, {n_ctx, n_head_kv, head_dim});
    cpu_->kv_write(kt.cpu, vt.cpu, p.cpu, kc.cpu, vc.cpu);
    gpu_->kv_write(kt.gpu, vt.gpu, p.gpu, kc.gpu, vc.gpu);
    expect_close(gpu_f32(kc), cpu_f32(kc), 0, 0, str_cat("k cache, head_dim ", head_dim));
    expect_close(gpu_f32(vc), cpu_f32(vc), 0, 0, str_cat("v cache, head_dim ", head_dim));

    // A bf16 cache (CUDA only) holds exactly the rounded values, the rest of it zeros.
    Tensor kb = gpu_->alloc(DType::bf16, {n_ctx, n_head_kv, head_dim});
    Tensor vb = gpu_->alloc(DType::bf16, {n_ctx, n_head_kv, head_dim});
    gpu_->kv_write(kt.gpu, vt.gpu, p.gpu, kb, vb);
    const auto kh = read<uint16_t>(*gpu_, kb), vh = read<uint16_t>(*gpu_, vb);
    std::vector<uint16_t> kw(size_t(n_ctx * row), 0), vw(size_t(n_ctx * row), 0);
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t i = 0; i < row; ++i) {
        kw[size_t(pos[size_t(t)] * row + i)] = f32_to_bf16(k[size_t(t * row + i)]);
        vw[size_t(pos[size_t(t)] * row + i)] = f32_to_bf16(v[size_t(t * row + i)]);
      }
    EXPECT_TRUE(kh == kw) << "bf16 k cache, head_dim " << head_dim;
    EXPECT_TRUE(vh == vw) << "bf16 v cache, head_dim " << head_dim;
  }
}

// --- attention ---------------------------------------------------------------

struct AttnCase {
  const char* name;
  int64_t n_head, n_head_kv, head_dim, n_ctx;
  std::vector<int32_t> pos;  // the query tokens' positions
  float q_scale;             // larger: sharper softmax
};

std::vector<int32_t> range(int32_t begin, int32_t end) {
  std::vector<int32_t> v(static_cast<size_t>(end - begin));
  std::iota(v.begin(), v.end(), begin);
  return v;
}

std::vector<int32_t> scattered(int n, int32_t n_ctx, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t& p : v) p = int32_t(rng() % uint32_t(n_ctx));
  return v;
}

std::vector<AttnCase> attention_cases() {
  std::vector<AttnCase> cases = {
      {"prefill 1:1 hd128 from 0", 32, 32, 128, 64, range(0, 37), 1.f},
      {"prefill 3:1 hd64 odd", 24, 8, 64, 200, range(0, 131), 1.f},
      {"decode 4:1 hd128 at 1234", 32, 8, 128, 1300, {1234}, 1.f},
      {"chunk 8:1 hd128 at end of 1100", 64, 8, 128, 1100, range(1081, 1100), 2.f},
      {"chunk 8:1 hd64 single kv head", 8, 1, 64, 2100, range(2047, 2050), 1.f},
      {"prefill 4:1 hd128 300 tokens (no split)", 32, 8, 128, 1000, range(700, 1000), 1.f},
      {"scattered positions 4:1 hd64", 16, 4, 64, 1500, scattered(23, 1500, 14), 3.f},
      {"decode 1:1 hd64 at 0", 4, 4, 64, 16, {0}, 1.f},
      {"decode 4:1 hd128 at 32767", 32, 8, 128, 32768, {32767}, 1.f},
      {"5 tokens 4:1 hd128 near 32K", 32, 8, 128, 32768, range(32000, 32005), 4.f},
  };
  // HERD_TEST_QUICK (set under compute-sanitizer, which slows kernels many times): no 32K contexts.
  if (std::getenv("HERD_TEST_QUICK") != nullptr)
    cases.erase(std::remove_if(cases.begin(), cases.end(), [](const AttnCase& c) { return c.n_ctx > 4096; }),
                cases.end());
  return cases;
}

class CudaAttention : public CudaVsCpu {
 protected:
  void run(const AttnCase& c, DType cache_type) {
    const int64_t n_tokens = int64_t(c.pos.size()), row = c.n_head_kv * c.head_dim;
    const Shape cache_shape = {c.n_ctx, c.n_head_kv, c.head_dim};
    // Random K/V everywhere (not only at the queries' positions): a key a query must not see
    // would show up in its output.
    auto kf = random_normal(size_t(c.n_ctx * row), 15), vf = random_normal(size_t(c.n_ctx * row), 16);
    if (cache_type == DType::bf16) kf = rounded(kf, DType::bf16), vf = rounded(vf, DType::bf16);
    Tensor kc = cpu_->alloc(DType::f32, cache_shape), vc = cpu_->alloc(DType::f32, cache_shape);
    cpu_->write(kc, kf.data(), kc.nbytes());
    cpu_->write(vc, vf.data(), vc.nbytes());
    Tensor kg = gpu_->alloc(cache_type, cache_shape), vg = gpu_->alloc(cache_type, cache_shape);
    const auto kb = encode(kf, cache_type), vb = encode(vf, cache_type);
    gpu_->write(kg, kb.data(), kg.nbytes());
    gpu_->write(vg, vb.data(), vg.nbytes());

    const auto q = random_normal(size_t(n_tokens * c.n_head * c.head_dim), 17, c.q_scale);
    auto qt = input(DType::f32, {n_tokens, c.n_head, c.head_dim}, q.data());
    auto p = input(DType::i32, {n_tokens}, c.pos.data());
    auto out = output(DType::f32, {n_tokens, c.n_head * c.head_dim});
    cpu_->attention(qt.cpu, kc, vc, p.cpu, out.cpu);
    gpu_->attention(qt.gpu, kg, vg, p.gpu, out.gpu);
    expect_close(gpu_f32(out), cpu_f32(out), 2e-5f, 1e-4f, str_cat(c.name, " cache ", dtype_name(cache_type)));
  }
};

TEST_F(CudaAttention, MatchesCpuWithF32Cache) {
  for (const AttnCase& c : attention_cases()) run(c, DType::f32);
}

TEST_F(CudaAttention, MatchesCpuWithBf16Cache) {
  for (const AttnCase& c : attention_cases()) run(c, DType::bf16);
}

TEST_F(CudaAttention, IsDeterministic) {
  // Same inputs twice, bit-identical outputs: a difference would be a race.
  const AttnCase c{"decode 4:1 hd128 at 5000", 32, 8, 128, 6000, {4999}, 1.f};
  const int64_t row = c.n_head_kv * c.head_dim;
  const Shape cache_shape = {c.n_ctx, c.n_head_kv, c.head_dim};
  const auto kf = random_normal(size_t(c.n_ctx * row), 18), vf = random_normal(size_t(c.n_ctx * row), 19);
  Tensor kg = gpu_->alloc(DType::f32, cache_shape), vg = gpu_->alloc(DType::f32, cache_shape);
  gpu_->write(kg, kf.data(), kg.nbytes());
  gpu_->write(vg, vf.data(), vg.nbytes());
  const auto q = random_normal(size_t(c.n_head * c.head_dim), 20);
  Tensor qt = gpu_->alloc(DType::f32, {1, c.n_head, c.head_dim});
  gpu_->write(qt, q.data(), qt.nbytes());
  Tensor p = gpu_->alloc(DType::i32, {1});
  gpu_->write(p, c.pos.data(), 4);
  Tensor o1 = gpu_->alloc(DType::f32, {1, c.n_head * c.head_dim}), o2 = gpu_->alloc(DType::f32, o1.shape);
  gpu_->attention(qt, kg, vg, p, o1);
  gpu_->attention(qt, kg, vg, p, o2);
  EXPECT_TRUE(read<float>(*gpu_, o1) == read<float>(*gpu_, o2));
}

// --- elementwise ---------------------------------------------------------------

TEST_F(CudaVsCpu, SiluMulMatches) {
  for (Shape s : {Shape{1, 14336}, Shape{5, 1001}, Shape{3, 7}}) {
    const int64_t n = shape_numel(s);
    const auto g = random_floats(size_t(n), 21, -12.f, 12.f), u = random_normal(size_t(n), 22);
    auto gt = input(DType::f32, s, g.data());
    auto ut = input(DType::f32, s, u.data());
    auto out = output(DType::f32, s);
    cpu_->silu_mul(gt.cpu, ut.cpu, out.cpu);
    gpu_->silu_mul(gt.gpu, ut.gpu, out.gpu);
    expect_close(gpu_f32(out), cpu_f32(out), 1e-7f, 2e-6f, "silu_mul " + shape_str(s));
  }
}

TEST_F(CudaVsCpu, AddIsExact) {
  for (Shape s : {Shape{3, 4097}, Shape{1, 4096}, Shape{5}}) {
    const int64_t n = shape_numel(s);
    const auto x = random_normal(size_t(n), 23), y = random_normal(size_t(n), 24);
    auto xt = input(DType::f32, s, x.data());
    auto yt = input(DType::f32, s, y.data());
    cpu_->add(xt.cpu, yt.cpu);
    gpu_->add(xt.gpu, yt.gpu);
    expect_close(gpu_f32(xt), cpu_f32(xt), 0, 0, "add " + shape_str(s));
  }
}

// Picking rows of f32 activations (before the LM head) is the same op as the embedding lookup.
TEST_F(CudaVsCpu, EmbedPicksRowsOfF32ActivationsExactly) {
  const int64_t n = 29, d = 4099;
  const auto x = random_normal(size_t(n * d), 25);
  const std::vector<int32_t> rows = {28, 0, 5, 5, 17};
  auto xt = input(DType::f32, {n, d}, x.data());
  auto r = input(DType::i32, {int64_t(rows.size())}, rows.data());
  auto out = output(DType::f32, {int64_t(rows.size()), d});
  cpu_->embed(xt.cpu, r.cpu, out.cpu);
  gpu_->embed(xt.gpu, r.gpu, out.gpu);
  expect_close(gpu_f32(out), cpu_f32(out), 0, 0, "embed of f32 rows");
}

// --- one layer, end to end ---------------------------------------------------------

// The ops chained as one Llama layer does (bf16 weights, 4:1 GQA, a prefill chunk then a decode
// token), so that hand-offs between ops (shapes, strides, the cache) are checked too.
TEST_F(CudaVsCpu, OneLlamaLayerMatches) {
  const int64_t n_embd = 512, n_head = 8, n_head_kv = 2, head_dim = 64, n_ff = 1376, n_vocab = 300, n_ctx = 256;
  const int64_t q_dim = n_head * head_dim, kv_dim = n_head_kv * head_dim;
  const DType wt = DType::bf16;
  uint32_t seed = 100;
  auto make_w = [&](Shape s, float scale) {
    const auto v = encode(random_normal(size_t(shape_numel(s)), seed++, scale), wt);
    return weight(wt, std::move(s), v.data());
  };
  auto tok_emb = make_w({n_vocab, n_embd}, 1.f);
  auto attn_norm = make_w({n_embd}, 1.f), ffn_norm = make_w({n_embd}, 1.f);
  const float s_in = 1.f / std::sqrt(float(n_embd)), s_ff = 1.f / std::sqrt(float(n_ff));
  auto wq = make_w({q_dim, n_embd}, s_in), wk = make_w({kv_dim, n_embd}, s_in), wv = make_w({kv_dim, n_embd}, s_in);
  auto wo = make_w({n_embd, q_dim}, s_in), wg = make_w({n_ff, n_embd}, s_in), wu = make_w({n_ff, n_embd}, s_in);
  auto wd = make_w({n_embd, n_ff}, s_ff);
  std::vector<float> inv_freq(static_cast<size_t>(head_dim / 2));
  for (size_t i = 0; i < inv_freq.size(); ++i) inv_freq[i] = std::pow(500000.f, -float(2 * i) / float(head_dim));
  auto freq = input(DType::f32, {head_dim / 2}, inv_freq.data());
  auto kc = output(DType::f32, {n_ctx, n_head_kv, head_dim}), vc = output(DType::f32, {n_ctx, n_head_kv, head_dim});

  auto step = [&](Backend& b, bool on_gpu, const std::vector<int32_t>& ids, const std::vector<int32_t>& pos) {
    auto pick = [&](Both& t) -> Tensor& { return on_gpu ? t.gpu : t.cpu; };
    const int64_t n = int64_t(ids.size());
    Tensor id = b.alloc(DType::i32, {n}), p = b.alloc(DType::i32, {n});
    b.write(id, ids.data(), size_t(n) * 4);
    b.write(p, pos.data(), size_t(n) * 4);
    Tensor x = b.alloc(DType::f32, {n, n_embd}), h = b.alloc(DType::f32, {n, n_embd});
    Tensor q = b.alloc(DType::f32, {n, n_head, head_dim}), k = b.alloc(DType::f32, {n, n_head_kv, head_dim});
    Tensor v = b.alloc(DType::f32, {n, n_head_kv, head_dim}), a = b.alloc(DType::f32, {n, q_dim});
    Tensor o = b.alloc(DType::f32, {n, n_embd}), g = b.alloc(DType::f32, {n, n_ff}), u = b.alloc(DType::f32, {n, n_ff});
    b.embed(pick(tok_emb), id, x);
    b.rms_norm(x, pick(attn_norm), 1e-5f, h);
    b.matmul(h, pick(wq), q);
    b.matmul(h, pick(wk), k);
    b.matmul(h, pick(wv), v);
    b.rope(q, p, pick(freq));
    b.rope(k, p, pick(freq));
    b.kv_write(k, v, p, pick(kc), pick(vc));
    b.attention(q, pick(kc), pick(vc), p, a);
    b.matmul(a, pick(wo), o);
    b.add(x, o);
    b.rms_norm(x, pick(ffn_norm), 1e-5f, h);
    b.matmul(h, pick(wg), g);
    b.matmul(h, pick(wu), u);
    b.silu_mul(g, u, g);
    b.matmul(g, pick(wd), o);
    b.add(x, o);
    std::vector<float> out(static_cast<size_t>(n * n_embd));
    b.read(x, out.data(), out.size() * 4);
    return out;
  };
  std::vector<int32_t> ids(37), pos(37);
  std::mt19937 rng(26);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(rng() % n_vocab), pos[i] = int32_t(i);
  const auto want = step(*cpu_, false, ids, pos);
  const auto got = step(*gpu_, true, ids, pos);
  // Activations are rounded to bf16 before each of 7 products: relative errors of a few 2^-8.
  expect_close(got, want, 2e-2f, 2e-2f, "one layer, prefill of 37");
  const auto want1 = step(*cpu_, false, {5}, {37});
  const auto got1 = step(*gpu_, true, {5}, {37});
  expect_close(got1, want1, 2e-2f, 2e-2f, "one layer, decode at 37");
}

}  // namespace
}  // namespace herd
