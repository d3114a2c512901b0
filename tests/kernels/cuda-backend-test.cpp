// Every op of the CUDA backend against the CPU backend (the reference), on fresh random inputs over
// awkward shapes: odd lengths, GQA 1:1 / 3:1 / 4:1 / 8:1, head_dim 32, 64 and 128, paged caches with
// shuffled blocks, partial blocks and block sizes 8 / 16 / 32, batches mixing prefill chunks and decode
// tokens, contexts up to 32K, f32 / f16 / bf16 weights. Skips cleanly without a GPU (CI).
#include <cuda_runtime_api.h>
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
#include "common/quant.h"
#include "paged-batch.h"
#include "random-blocks.h"
#include "sampling-cases.h"
#include "sampling/penalty-tokens.h"

namespace herd {
namespace {

class CudaVsCpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
    gpu_ = make_cuda_backend(0);
    cpu_ = make_cpu_backend(0, /*exact=*/true);  // the reference ops (f32 KV cache)
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
      // -1: a row another tensor-parallel rank holds, zeros on both backends.
      std::vector<int32_t> ids = {0, 1000, 7, 7, 512, -1, 999, 3, 0, 123, 1000, 44, -1, 45, 46};
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

// --- add_rms_norm ----------------------------------------------------------------

TEST_F(CudaVsCpu, AddRmsNormMatchesOverShapesAndWeightTypes) {
  struct Case {
    int64_t n, d;
  };
  // 4099 and 3: the scalar path; 16384: the longest row (1024 threads); odd n everywhere but 64.
  for (DType dtype : kWeightTypes) {
    for (Case c : {Case{1, 4096}, Case{7, 4096}, Case{5, 4099}, Case{3, 3}, Case{64, 2048}, Case{3, 16384},
                   Case{1, 8192}, Case{9, 100}}) {
      const auto x = random_normal(size_t(c.n * c.d), 2, 3.f), y = random_normal(size_t(c.n * c.d), 4);
      const auto wv = encode(random_floats(size_t(c.d), 3, 0.5f, 1.5f), dtype);
      auto w = weight(dtype, {c.d}, wv.data());
      // out in its own buffer, and in y's memory (as the model calls it): the same results.
      for (bool out_is_y : {false, true}) {
        auto xt = input(DType::f32, {c.n, c.d}, x.data());
        auto yt = input(DType::f32, {c.n, c.d}, y.data());
        auto own = output(DType::f32, {c.n, c.d});
        Both& out = out_is_y ? yt : own;
        cpu_->add_rms_norm(xt.cpu, yt.cpu, w.cpu, 1e-5f, out.cpu);
        gpu_->add_rms_norm(xt.gpu, yt.gpu, w.gpu, 1e-5f, out.gpu);
        const std::string what =
            str_cat("add_rms_norm ", dtype_name(dtype), " [", c.n, ", ", c.d, "]", out_is_y ? " out = y" : "");
        expect_close(gpu_f32(xt), cpu_f32(xt), 0, 0, what + ": x + y");  // one f32 add on both sides
        expect_close(gpu_f32(out), cpu_f32(out), 1e-6f, 1e-5f, what);
      }
    }
  }
}

// --- matmul ------------------------------------------------------------------

struct MatmulCase {
  int64_t n, k, m;
};
// n <= 8 with k a multiple of 8 takes the GEMV (kernels/dense-gemv.cuh) for 16-bit weights, the rest cuBLAS.
const MatmulCase kMatmulCases[] = {{1, 4096, 515}, {17, 1000, 257}, {7, 257, 3}, {64, 512, 384},
                                   {3, 4099, 33},  {8, 1024, 300},  {5, 4104, 77}, {9, 512, 40}};

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

// Quantized weights stay in their blocks on the device: up to 8 tokens through the GEMV, which
// widens them in registers (f32 products, as the CPU's exact path); more through BF16 slabs and
// cuBLAS, which round the weights and the activations to BF16 first.
// Products that share an input (q, k, v; gate, up): one GEMV launch for decode steps, separate
// GEMMs beyond; every part equal to the CPU's product whichever way it ran.
TEST_F(CudaVsCpu, MatmulSharedMatchesEachProduct) {
  for (DType dtype : {DType::bf16, DType::f16}) {
    for (int64_t n : {1, 2, 5, 8, 9}) {
      const int64_t k = 1032;
      const int64_t ms[] = {96, 24, 24};  // q, k, v of a 3:1 model with head_dim 8
      // x representable in dtype: the cuBLAS path rounds it, the GEMV does not; both are then exact products.
      const auto x = rounded(random_floats(size_t(n * k), uint32_t(40 + n)), dtype);
      auto xt = input(DType::f32, {n, k}, x.data());
      std::vector<Both> ws, outs;
      std::vector<std::vector<float>> wfs;
      for (int i = 0; i < 3; ++i) {
        wfs.push_back(rounded(random_floats(size_t(ms[i] * k), uint32_t(50 + i)), dtype));
        ws.push_back(weight(dtype, {ms[i], k}, encode(wfs.back(), dtype).data()));
        outs.push_back(output(DType::f32, {n, ms[i]}));
      }
      const MatmulOut cpu_parts[] = {{ws[0].cpu, outs[0].cpu}, {ws[1].cpu, outs[1].cpu}, {ws[2].cpu, outs[2].cpu}};
      const MatmulOut gpu_parts[] = {{ws[0].gpu, outs[0].gpu}, {ws[1].gpu, outs[1].gpu}, {ws[2].gpu, outs[2].gpu}};
      cpu_->matmul_shared(xt.cpu, cpu_parts);
      gpu_->matmul_shared(xt.gpu, gpu_parts);
      for (int i = 0; i < 3; ++i) {
        std::vector<float> tol(static_cast<size_t>(n * ms[i]));
        for (int64_t t = 0; t < n; ++t)
          for (int64_t r = 0; r < ms[i]; ++r) {
            double s = 0;
            for (int64_t c = 0; c < k; ++c) s += std::fabs(x[size_t(t * k + c)] * wfs[size_t(i)][size_t(r * k + c)]);
            tol[size_t(t * ms[i] + r)] = float(2e-5 * s + 1e-6);
          }
        expect_close(gpu_f32(outs[size_t(i)]), cpu_f32(outs[size_t(i)]), 0, 0,
                     str_cat("matmul_shared ", dtype_name(dtype), " part ", i, ", ", n, " tokens"), &tol);
      }
    }
  }
}

// SwiGLU's first half: one GEMV launch for decode steps (gate and up rows in one warp, silu(g) * u
// written out), the shared products and silu_mul beyond; against the CPU's products and silu_mul.
TEST_F(CudaVsCpu, SwigluMatchesCpu) {
  for (DType dtype : {DType::bf16, DType::f16})
    for (int64_t n : {1, 5, 8, 9}) {
      const int64_t k = 1040, f = 300;
      const auto x = rounded(random_floats(size_t(n * k), uint32_t(80 + n)), dtype);  // exact for cuBLAS too
      const auto wgf = rounded(random_floats(size_t(f * k), 81), dtype);
      const auto wuf = rounded(random_floats(size_t(f * k), 82), dtype);
      auto xt = input(DType::f32, {n, k}, x.data());
      auto wg = weight(dtype, {f, k}, encode(wgf, dtype).data()), wu = weight(dtype, {f, k}, encode(wuf, dtype).data());
      auto gate = output(DType::f32, {n, f}), up = output(DType::f32, {n, f});
      cpu_->swiglu(xt.cpu, wg.cpu, wu.cpu, gate.cpu, up.cpu);
      gpu_->swiglu(xt.gpu, wg.gpu, wu.gpu, gate.gpu, up.gpu);
      const auto want = cpu_f32(gate), u = cpu_f32(up);
      std::vector<float> tol(want.size());
      for (int64_t t = 0; t < n; ++t)
        for (int64_t r = 0; r < f; ++r) {
          double g = 0, sg = 0, su = 0;
          for (int64_t c = 0; c < k; ++c) {
            g += double(x[size_t(t * k + c)]) * wgf[size_t(r * k + c)];
            sg += std::fabs(x[size_t(t * k + c)] * wgf[size_t(r * k + c)]);
            su += std::fabs(x[size_t(t * k + c)] * wuf[size_t(r * k + c)]);
          }
          // d(silu(g) u) = silu'(g) u dg + silu(g) du with |silu'| <= 1.1; each product to f32 rounding.
          const size_t at = size_t(t * f + r);
          tol[at] = float(1e-5 * (1.1 * sg * std::fabs(u[at]) + std::fabs(g / (1 + std::exp(-g))) * su) + 1e-6);
        }
      expect_close(gpu_f32(gate), want, 0, 0, str_cat("swiglu ", dtype_name(dtype), ", ", n, " tokens"), &tol);
    }
}

// FP8 weights with one scale per row (every FP8 checkpoint's) become E4M3 rows on the device: the
// GEMV for decode steps (x in f32), and for more tokens x quantized per token (scale max |x| / 448)
// and multiplied on FP8 tensor cores through cuBLASLt, or, where cuBLASLt has no kernel for the
// shape, the rows widened to BF16 against x in BF16. Each path against the CPU's exact product of
// what it multiplies; on a GPU with FP8 tensor cores the aligned 64 x 64 case must take cuBLASLt.
TEST_F(CudaVsCpu, MatmulFp8RowsMatchesCpu) {
  cudaDeviceProp prop{};
  ASSERT_EQ(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
  const bool fp8_cores = prop.major * 10 + prop.minor >= 89;
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> unit(-1.f, 1.f);
  const int64_t k = 768;
  for (int64_t m : {64, 70})
    for (int64_t n : {1, 5, 8, 9, 40, 64}) {
      std::vector<Fp8Block> blocks(size_t(m * k / 32));
      for (int64_t r = 0; r < m; ++r) {
        const float d = 0.002f * (1.5f + unit(rng));
        for (int64_t b = 0; b < k / 32; ++b) {
          Fp8Block& blk = blocks[size_t(r * (k / 32) + b)];
          blk.d = d;
          for (uint8_t& q : blk.q) q = f32_to_e4m3(400.f * unit(rng));
        }
      }
      const TensorView view{DType::fp8, {m, k}, blocks.data()};
      const Tensor wc = cpu_->upload_weight(view);
      const Tensor wg = gpu_->upload_weight(view);
      ASSERT_EQ(wg.dtype, DType::f8_e4m3) << "rows of one scale each become FP8 rows";
      std::vector<float> wf(size_t(m * k));
      for (int64_t r = 0; r < m; ++r) dequantize_row(DType::fp8, &blocks[size_t(r * (k / 32))], wf.data() + r * k, k);
      const auto x = random_floats(size_t(n * k), uint32_t(60 + n));
      auto xt = input(DType::f32, {n, k}, x.data());
      auto out = output(DType::f32, {n, m});
      gpu_->matmul(xt.gpu, wg, out.gpu);
      const auto got = gpu_f32(out);
      // The CPU's exact product with x as the GPU path took it: f32 (GEMV), per-token E4M3, or BF16.
      auto reference = [&](const std::vector<float>& xin, double rel) {
        Tensor xc = cpu_->alloc(DType::f32, {n, k}), oc = cpu_->alloc(DType::f32, {n, m});
        cpu_->write(xc, xin.data(), xc.nbytes());
        cpu_->matmul(xc, wc, oc);
        const auto want = read<float>(*cpu_, oc);
        size_t n_bad = 0;
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < m; ++j) {
            double mag = 0;
            for (int64_t l = 0; l < k; ++l) mag += std::fabs(xin[size_t(i * k + l)] * wf[size_t(j * k + l)]);
            n_bad += !(std::fabs(got[size_t(i * m + j)] - want[size_t(i * m + j)]) <= rel * mag + 1e-6);
          }
        return n_bad;
      };
      const std::string what = str_cat("FP8 rows ", m, "x", k, ", ", n, " tokens");
      if (n <= 8) {
        EXPECT_EQ(reference(x, 2e-5), 0u) << what << " (GEMV)";
        continue;
      }
      std::vector<float> x_fp8(x.size()), x_bf16 = rounded(x, DType::bf16);
      for (int64_t i = 0; i < n; ++i) {
        float amax = 0.f;
        for (int64_t l = 0; l < k; ++l) amax = std::max(amax, std::fabs(x[size_t(i * k + l)]));
        const float scale = amax > 0.f ? amax / 448.f : 1.f;
        for (int64_t l = 0; l < k; ++l)
          x_fp8[size_t(i * k + l)] = scale * e4m3_to_f32(f32_to_e4m3(x[size_t(i * k + l)] / scale));
      }
      const bool on_fp8_cores = reference(x_fp8, 1e-5) == 0;
      if (fp8_cores && m == 64 && n == 64) {
        EXPECT_TRUE(on_fp8_cores) << what << ": cuBLASLt FP8 was not used";
      }
      if (!on_fp8_cores) {
        EXPECT_EQ(reference(x_bf16, 1.05 / 256 + 2e-5), 0u) << what << " (widened to BF16)";
      }
    }
}

TEST_F(CudaVsCpu, MatmulQuantizedWeights) {
  std::mt19937 rng(9);
  for (DType dtype : {DType::q8_0, DType::q4_0, DType::q4_1, DType::q4_k, DType::q5_k, DType::q6_k, DType::fp8,
                      DType::int4})
    for (int64_t n : {1, 5, 8, 9, 40}) {
      const int64_t k = 768, m = 70;
      const std::vector<uint8_t> wbytes = random_blocks(dtype, m * k / dtype_block(dtype).elems, rng);
      std::vector<float> wf(size_t(m * k));
      for (int64_t r = 0; r < m; ++r)
        dequantize_row(dtype, wbytes.data() + dtype_nbytes(dtype, r * k), wf.data() + r * k, k);
      const auto x = random_floats(size_t(n * k), 10);
      const Tensor wc = cpu_->upload_weight(TensorView{dtype, {m, k}, wbytes.data()});
      const Tensor wg = gpu_->upload_weight(TensorView{dtype, {m, k}, wbytes.data()});
      EXPECT_EQ(wg.nbytes(), wbytes.size()) << "kept in its blocks";
      Tensor xc = cpu_->alloc(DType::f32, {n, k}), oc = cpu_->alloc(DType::f32, {n, m});
      cpu_->write(xc, x.data(), xc.nbytes());
      auto xt = input(DType::f32, {n, k}, x.data());
      auto out = output(DType::f32, {n, m});
      cpu_->matmul(xc, wc, oc);
      gpu_->matmul(xt.gpu, wg, out.gpu);
      const double rel = n <= 8 ? 2e-5 : 2.0 / 256 * 1.05 + 2e-5;
      std::vector<float> tol(size_t(n * m));
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < m; ++j) {
          double s = 0;
          for (int64_t l = 0; l < k; ++l) s += std::fabs(x[size_t(i * k + l)] * wf[size_t(j * k + l)]);
          tol[size_t(i * m + j)] = float(rel * s + 1e-6);
        }
      expect_close(gpu_f32(out), read<float>(*cpu_, oc), 0, 0, str_cat("matmul ", dtype_name(dtype), " n ", n),
                   &tol);
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
      // RoPE through the fused op with no slot written: k is one throwaway head.
      const std::vector<int32_t> no_slots(static_cast<size_t>(n_tokens), -1);
      const auto kv = random_normal(size_t(n_tokens * head_dim), 11);
      auto kt = input(DType::f32, {n_tokens, 1, head_dim}, kv.data());
      auto vt = input(DType::f32, {n_tokens, 1, head_dim}, kv.data());
      auto slots = input(DType::i32, {n_tokens}, no_slots.data());
      auto caches = [&](Backend& be) {
        return std::pair{be.alloc(be.kv_dtype(), {1, 1, 16, head_dim}), be.alloc(be.kv_dtype(), {1, 1, 16, head_dim})};
      };
      auto [kc_cpu, vc_cpu] = caches(*cpu_);
      auto [kc_gpu, vc_gpu] = caches(*gpu_);
      cpu_->rope_kv_write(xt.cpu, kt.cpu, vt.cpu, p.cpu, f.cpu, slots.cpu, kc_cpu, vc_cpu);
      gpu_->rope_kv_write(xt.gpu, kt.gpu, vt.gpu, p.gpu, f.gpu, slots.gpu, kc_gpu, vc_gpu);
      expect_close(gpu_f32(xt), cpu_f32(xt), 2e-6f, 1e-5f, str_cat("rope head_dim ", head_dim, " n_head ", n_head));
    }
  }
}

// --- rope_kv_write ---------------------------------------------------------------

TEST_F(CudaVsCpu, RopeKvWriteMatchesThroughShuffledSlots) {
  struct Gqa {
    int64_t n_head, n_head_kv;
  };
  for (int64_t head_dim : {64, 128}) {
    for (Gqa g : {Gqa{8, 8}, Gqa{24, 8}, Gqa{32, 8}, Gqa{64, 8}, Gqa{8, 1}}) {
      for (int64_t block_size : {16, 32}) {
        const int64_t n_blocks = 40, n_tokens = 37, half = head_dim / 2;
        const int64_t q_row = g.n_head * head_dim, kv_row = g.n_head_kv * head_dim;
        const Shape cache_shape = {n_blocks, g.n_head_kv, block_size, head_dim};
        std::vector<int32_t> slots(static_cast<size_t>(n_blocks * block_size - 1));  // all but the last slot
        std::iota(slots.begin(), slots.end(), 0);
        std::shuffle(slots.begin(), slots.end(), std::mt19937(11));
        slots.resize(size_t(n_tokens));  // distinct, unsorted, anywhere in the cache, partial blocks
        slots[3] = slots[20] = -1;       // padding tokens: rotated, not written
        slots[36] = int32_t(n_blocks * block_size - 1);  // the very last slot (distinct: not drawn above)
        std::vector<int32_t> pos(static_cast<size_t>(n_tokens));
        std::mt19937 rng(9);
        for (int64_t t = 0; t < n_tokens; ++t) pos[size_t(t)] = t < 10 ? int32_t(t) : int32_t(rng() % 131072);
        pos[35] = 131071;
        pos[36] = 32767;
        std::vector<float> inv_freq(static_cast<size_t>(half));
        for (int64_t i = 0; i < half; ++i) inv_freq[size_t(i)] = std::pow(500000.f, -float(2 * i) / float(head_dim));
        const auto q = random_normal(size_t(n_tokens * q_row), 10), k = random_normal(size_t(n_tokens * kv_row), 12);
        const auto v = random_normal(size_t(n_tokens * kv_row), 13);
        auto p = input(DType::i32, {n_tokens}, pos.data());
        auto f = input(DType::f32, {half}, inv_freq.data());
        auto sm = input(DType::i32, {n_tokens}, slots.data());
        auto vt = input(DType::f32, {n_tokens, g.n_head_kv, head_dim}, v.data());
        const std::string what = str_cat("head_dim ", head_dim, " heads ", g.n_head, "/", g.n_head_kv, " block_size ",
                                         block_size);

        // An f32 cache on both: rotations agree to a few f32 ulps (sincosf vs std::cos/sin of the
        // same f32 angle), v is a pure copy, and every slot not written stays 0 on both.
        auto qt = input(DType::f32, {n_tokens, g.n_head, head_dim}, q.data());
        auto kt = input(DType::f32, {n_tokens, g.n_head_kv, head_dim}, k.data());
        auto kc = output(DType::f32, cache_shape), vc = output(DType::f32, cache_shape);
        cpu_->rope_kv_write(qt.cpu, kt.cpu, vt.cpu, p.cpu, f.cpu, sm.cpu, kc.cpu, vc.cpu);
        gpu_->rope_kv_write(qt.gpu, kt.gpu, vt.gpu, p.gpu, f.gpu, sm.gpu, kc.gpu, vc.gpu);
        expect_close(gpu_f32(qt), cpu_f32(qt), 2e-6f, 1e-5f, "q, " + what);
        expect_close(gpu_f32(kt), cpu_f32(kt), 2e-6f, 1e-5f, "k, " + what);
        expect_close(gpu_f32(kc), cpu_f32(kc), 2e-6f, 1e-5f, "f32 k cache, " + what);
        expect_close(gpu_f32(vc), cpu_f32(vc), 0, 0, "f32 v cache, " + what);

        // The backend's own cache type (bf16), on fresh q and k: exactly the host's rounding of the
        // device's rotated k (checked against the CPU above) and of v at each written slot, zeros elsewhere.
        ASSERT_EQ(gpu_->kv_dtype(), DType::bf16);
        Tensor qg = gpu_->alloc(DType::f32, {n_tokens, g.n_head, head_dim});
        Tensor kg = gpu_->alloc(DType::f32, {n_tokens, g.n_head_kv, head_dim});
        gpu_->write(qg, q.data(), qg.nbytes());
        gpu_->write(kg, k.data(), kg.nbytes());
        Tensor kb = gpu_->alloc(DType::bf16, cache_shape), vb = gpu_->alloc(DType::bf16, cache_shape);
        gpu_->rope_kv_write(qg, kg, vt.gpu, p.gpu, f.gpu, sm.gpu, kb, vb);
        const auto k_rot = read<float>(*gpu_, kg);
        expect_close(k_rot, cpu_f32(kt), 2e-6f, 1e-5f, "k with a bf16 cache, " + what);
        std::vector<uint16_t> kw(size_t(shape_numel(cache_shape)), 0), vw(kw.size(), 0);
        for (int64_t t = 0; t < n_tokens; ++t) {
          const int32_t slot = slots[size_t(t)];
          if (slot < 0) continue;
          const int64_t block = slot / block_size, offset = slot % block_size;
          for (int64_t h = 0; h < g.n_head_kv; ++h)
            for (int64_t d = 0; d < head_dim; ++d) {
              const size_t dst = size_t(((block * g.n_head_kv + h) * block_size + offset) * head_dim + d);
              kw[dst] = f32_to_bf16(k_rot[size_t(t * kv_row + h * head_dim + d)]);
              vw[dst] = f32_to_bf16(v[size_t(t * kv_row + h * head_dim + d)]);
            }
        }
        EXPECT_TRUE(read<uint16_t>(*gpu_, kb) == kw) << "bf16 k cache, " << what;
        EXPECT_TRUE(read<uint16_t>(*gpu_, vb) == vw) << "bf16 v cache, " << what;
      }
    }
  }
}

// --- attention ---------------------------------------------------------------

struct AttnCase {
  std::string name;
  int64_t n_head, n_head_kv, head_dim, block_size;
  std::vector<SeqSpec> seqs;
  float q_scale;  // larger: sharper softmax
};

std::vector<AttnCase> attention_cases() {
  std::vector<SeqSpec> decode48;  // enough decode rows that the kernel needs no key splits
  std::mt19937 rng(14);
  for (int i = 0; i < 48; ++i) decode48.push_back({int32_t(1 + rng() % 3000), 1});
  std::vector<AttnCase> cases = {
      {"prefill 1:1 hd128 from 0", 32, 32, 128, 16, {{37, 37}}, 1.f},
      {"prefill 3:1 hd64 odd", 24, 8, 64, 16, {{131, 131}}, 1.f},
      {"mixed prefill/decode 4:1 hd128, a q_len 0 sequence", 32, 8, 128, 16,
       {{1234, 1}, {300, 300}, {1100, 19}, {17, 1}, {5, 0}, {64, 64}, {2, 1}}, 1.f},
      {"decode batch 8:1 hd128 bs32", 64, 8, 128, 32, {{1, 1}, {33, 1}, {1000, 1}, {2049, 1}, {31, 1}, {32, 1}}, 2.f},
      {"chunk 8:1 hd64 single kv head", 8, 1, 64, 16, {{2050, 3}}, 1.f},
      {"mixed 3:1 hd64 bs32", 24, 8, 64, 32, {{700, 7}, {45, 45}, {9, 1}}, 3.f},
      {"hd32 4:1 bs8 (test fixture shape)", 8, 2, 32, 8, {{100, 100}, {50, 1}, {8, 8}}, 1.f},
      {"chunk of 300 after 700, 4:1 hd128 (no split)", 32, 8, 128, 16, {{1000, 300}}, 1.f},
      {"decode batch of 48, 4:1 hd128 (no split)", 32, 8, 128, 16, decode48, 1.f},
      {"decode 1:1 hd64 at 0", 4, 4, 64, 16, {{1, 1}}, 1.f},
      {"decode 4:1 hd128 at 32767", 32, 8, 128, 16, {{32768, 1}}, 1.f},
      {"5 tokens 4:1 hd128 near 32K bs32", 32, 8, 128, 32, {{32005, 5}}, 4.f},
      {"decode at 32K next to a prefill chunk, 4:1 hd128", 32, 8, 128, 16, {{32768, 1}, {200, 64}}, 1.f},
  };
  // HERD_TEST_QUICK (set under compute-sanitizer, which slows kernels many times): no 32K contexts.
  if (std::getenv("HERD_TEST_QUICK") != nullptr)
    cases.erase(std::remove_if(cases.begin(), cases.end(),
                               [](const AttnCase& c) {
                                 return std::any_of(c.seqs.begin(), c.seqs.end(),
                                                    [](const SeqSpec& s) { return s.seq_len > 4096; });
                               }),
                cases.end());
  return cases;
}

class CudaAttention : public CudaVsCpu {
 protected:
  void SetUp() override {
    CudaVsCpu::SetUp();
    if (IsSkipped()) return;
    simt_ = make_cuda_backend(0, /*kv_fp8=*/false, /*flash_attention=*/false);
  }

  struct Outputs {
    std::vector<float> gpu, cpu;
    std::vector<float> cpu_abs_v;  // the CPU's output with |V| for V: sum_i p_i |v_i| per element
  };
  // One batch through `gpu` and the CPU backend. bf16_q: q rounded to bf16 first (what the
  // tensor-core kernel multiplies), so that both sides score the same values.
  Outputs run(const AttnCase& c, uint32_t seed, Backend& gpu, bool bf16_q = false) {
    const PagedBatch b = make_batch(c.seqs, c.block_size, seed);
    const Shape cache_shape = {b.n_blocks, c.n_head_kv, c.block_size, c.head_dim};
    // Random K/V in every slot of every block (spare blocks and the tails of partial blocks too):
    // a key a query must not see would show up in its output. The CUDA cache is bf16, the CPU's
    // f32: both get the same bf16-representable values, so only the arithmetic differs.
    EXPECT_EQ(gpu.kv_dtype(), DType::bf16);
    const auto kf = rounded(random_normal(size_t(shape_numel(cache_shape)), seed + 1), DType::bf16);
    const auto vf = rounded(random_normal(size_t(shape_numel(cache_shape)), seed + 2), DType::bf16);
    auto vabs = vf;
    for (float& x : vabs) x = std::fabs(x);
    auto on_cpu = [&](DType t, const Shape& shape, const void* data) {
      Tensor x = cpu_->alloc(t, shape);
      cpu_->write(x, data, x.nbytes());
      return x;
    };
    auto on_gpu = [&](DType t, const Shape& shape, const void* data) {
      Tensor x = gpu.alloc(t, shape);
      gpu.write(x, data, x.nbytes());
      return x;
    };
    auto q = random_normal(size_t(b.n_tokens * c.n_head * c.head_dim), seed + 3, c.q_scale);
    if (bf16_q) q = rounded(std::move(q), DType::bf16);
    const Shape q_shape = {b.n_tokens, c.n_head, c.head_dim}, out_shape = {b.n_tokens, c.n_head * c.head_dim};
    Outputs o;
    {
      Tensor qt = on_cpu(DType::f32, q_shape, q.data()), qsl = on_cpu(DType::i32, {b.n_seqs + 1}, b.qsl.data());
      Tensor sl = on_cpu(DType::i32, {b.n_seqs}, b.seq_lens.data());
      Tensor bt = on_cpu(DType::i32, {b.n_seqs, b.max_blocks}, b.block_table.data());
      Tensor kc = on_cpu(DType::f32, cache_shape, kf.data()), out = cpu_->alloc(DType::f32, out_shape);
      cpu_->attention(qt, kc, on_cpu(DType::f32, cache_shape, vf.data()), qsl, sl, bt, out);
      o.cpu = read<float>(*cpu_, out);
      cpu_->attention(qt, kc, on_cpu(DType::f32, cache_shape, vabs.data()), qsl, sl, bt, out);
      o.cpu_abs_v = read<float>(*cpu_, out);
    }
    const auto kb = encode(kf, DType::bf16), vb = encode(vf, DType::bf16);
    Tensor qt = on_gpu(DType::f32, q_shape, q.data()), qsl = on_gpu(DType::i32, {b.n_seqs + 1}, b.qsl.data());
    Tensor sl = on_gpu(DType::i32, {b.n_seqs}, b.seq_lens.data());
    Tensor bt = on_gpu(DType::i32, {b.n_seqs, b.max_blocks}, b.block_table.data());
    Tensor out = gpu.alloc(DType::f32, out_shape);
    gpu.attention(qt, on_gpu(DType::bf16, cache_shape, kb.data()), on_gpu(DType::bf16, cache_shape, vb.data()), qsl,
                  sl, bt, out);
    o.gpu = read<float>(gpu, out);
    return o;
  }

  std::unique_ptr<Backend> simt_;  // every step on the f32 kernel
};

std::string describe(const AttnCase& c) {
  return str_cat(c.name, " (", c.n_head, "/", c.n_head_kv, " heads, hd ", c.head_dim, ", block ", c.block_size, ")");
}

TEST_F(CudaAttention, MatchesCpuOnBf16RoundedCache) {
  uint32_t seed = 15;
  for (const AttnCase& c : attention_cases()) {
    const Outputs o = run(c, seed += 10, *simt_);
    // Same inputs, f32 arithmetic on both sides: the differences are summation order (tiles of 32
    // keys and key splits vs one pass), expf vs std::exp and the online softmax's rescaling, each a
    // few f32 ulps relative per term of a convex combination of V rows (|v| <~ 5). 2e-5 absolute +
    // 1e-4 relative holds with margin at 32K keys; a wrong key, block or mask is off by ~1e-2 or more.
    expect_close(o.gpu, o.cpu, 2e-5f, 1e-4f, describe(c));
  }
}

// The default backend: steps with prefill chunks on tensor cores, decode steps as above.
TEST_F(CudaAttention, TensorCoresMatchCpuWithinBf16Probabilities) {
  uint32_t seed = 115;
  for (const AttnCase& c : attention_cases()) {
    const Outputs o = run(c, seed += 10, *gpu_, /*bf16_q=*/true);
    const auto tol = flash_tolerance(o.cpu, o.cpu_abs_v);
    expect_close(o.gpu, o.cpu, 0, 0, describe(c) + " on tensor cores", &tol);
  }
}

// An FP8 KV cache: the same E4M3 codes in both caches, written through rope_kv_write at position 0
// (RoPE the identity there, so both write the codes of the same values: they must be byte-equal),
// then attention with scales on both; the CPU's exact path is the reference. Both CUDA kernels: the
// f32 one (every step) and the tensor-core one (the default for steps with prefill chunks).
TEST_F(CudaAttention, Fp8CacheMatchesCpu) {
  const auto cpu8 = make_cpu_backend(0, /*exact=*/true, /*kv_fp8=*/true);
  const KvScales scales{0.05f, 0.02f};
  for (const bool flash : {false, true}) {
    const auto gpu8 = make_cuda_backend(0, /*kv_fp8=*/true, flash);
    ASSERT_EQ(gpu8->kv_dtype(), DType::f8_e4m3);
    uint32_t seed = flash ? 170 : 70;
    for (const AttnCase& c : attention_cases()) {
      if (std::any_of(c.seqs.begin(), c.seqs.end(), [](const SeqSpec& s) { return s.seq_len > 4096; })) continue;
      const PagedBatch b = make_batch(c.seqs, c.block_size, seed += 10);
      const Shape cache_shape = {b.n_blocks, c.n_head_kv, c.block_size, c.head_dim};
      const int64_t n_slots = b.n_blocks * c.block_size;
      // Every slot written (keys that must not be seen are there too), values of a few units.
      const auto kf = random_normal(size_t(n_slots * c.n_head_kv * c.head_dim), seed + 1, 3.f);
      const auto vf = random_normal(size_t(n_slots * c.n_head_kv * c.head_dim), seed + 2);
      std::vector<int32_t> slots(static_cast<size_t>(n_slots)), zeros(static_cast<size_t>(n_slots), 0);
      for (int64_t i = 0; i < n_slots; ++i) slots[size_t(i)] = int32_t(i);
      std::vector<float> freq(size_t(c.head_dim / 2), 1.f);
      Tensor kc = cpu8->alloc(DType::f8_e4m3, cache_shape), vc = cpu8->alloc(DType::f8_e4m3, cache_shape);
      Tensor kg = gpu8->alloc(DType::f8_e4m3, cache_shape), vg = gpu8->alloc(DType::f8_e4m3, cache_shape);
      auto both = [&](DType t, const Shape& shape, const void* data) {
        std::pair<Tensor, Tensor> p{cpu8->alloc(t, shape), gpu8->alloc(t, shape)};
        cpu8->write(p.first, data, p.first.nbytes());
        gpu8->write(p.second, data, p.second.nbytes());
        return p;
      };
      auto [pq, pqg] = both(DType::f32, {n_slots, 1, c.head_dim}, std::vector<float>(size_t(n_slots * c.head_dim)).data());
      auto [pk, pkg] = both(DType::f32, {n_slots, c.n_head_kv, c.head_dim}, kf.data());
      auto [pv, pvg] = both(DType::f32, {n_slots, c.n_head_kv, c.head_dim}, vf.data());
      auto [ps, psg] = both(DType::i32, {n_slots}, slots.data());
      auto [pz, pzg] = both(DType::i32, {n_slots}, zeros.data());
      auto [pf, pfg] = both(DType::f32, {c.head_dim / 2}, freq.data());
      cpu8->rope_kv_write(pq, pk, pv, pz, pf, ps, kc, vc, scales);
      gpu8->rope_kv_write(pqg, pkg, pvg, pzg, pfg, psg, kg, vg, scales);
      EXPECT_TRUE(read<uint8_t>(*cpu8, kc) == read<uint8_t>(*gpu8, kg)) << c.name << ": K codes";
      EXPECT_TRUE(read<uint8_t>(*cpu8, vc) == read<uint8_t>(*gpu8, vg)) << c.name << ": V codes";

      auto q = random_normal(size_t(b.n_tokens * c.n_head * c.head_dim), seed + 3, c.q_scale);
      if (flash) q = rounded(std::move(q), DType::bf16);  // what the tensor cores multiply
      auto [qt, qtg] = both(DType::f32, {b.n_tokens, c.n_head, c.head_dim}, q.data());
      auto [qsl, qslg] = both(DType::i32, {b.n_seqs + 1}, b.qsl.data());
      auto [sl, slg] = both(DType::i32, {b.n_seqs}, b.seq_lens.data());
      auto [bt, btg] = both(DType::i32, {b.n_seqs, b.max_blocks}, b.block_table.data());
      Tensor out = cpu8->alloc(DType::f32, {b.n_tokens, c.n_head * c.head_dim});
      Tensor outg = gpu8->alloc(DType::f32, out.shape);
      cpu8->attention(qt, kc, vc, qsl, sl, bt, out, scales);
      gpu8->attention(qtg, kg, vg, qslg, slg, btg, outg, scales);
      const auto want = read<float>(*cpu8, out);
      if (!flash) {
        // As the bf16 test: the same values, f32 arithmetic in different orders.
        expect_close(read<float>(*gpu8, outg), want, 2e-5f, 1e-4f, str_cat(c.name, " (FP8 cache)"));
        continue;
      }
      // The bound of the bf16 test, from the output with |V|: the codes without their sign bits.
      auto codes = read<uint8_t>(*cpu8, vc);
      for (uint8_t& x : codes) x &= 0x7f;
      Tensor vabs = cpu8->alloc(DType::f8_e4m3, cache_shape);
      cpu8->write(vabs, codes.data(), vabs.nbytes());
      cpu8->attention(qt, kc, vabs, qsl, sl, bt, out, scales);
      const auto tol = flash_tolerance(want, read<float>(*cpu8, out));
      expect_close(read<float>(*gpu8, outg), want, 0, 0, str_cat(c.name, " (FP8 cache, tensor cores)"), &tol);
    }
  }
}

TEST_F(CudaAttention, IsDeterministic) {
  // A mixed batch that takes the key-split path, twice on each kernel: bit-identical outputs (a
  // difference would be a race).
  const AttnCase c{"mixed with splits", 32, 8, 128, 16, {{5000, 1}, {40, 40}, {777, 3}}, 1.f};
  for (Backend* g : {gpu_.get(), simt_.get()}) {
    const PagedBatch b = make_batch(c.seqs, c.block_size, 18);
    const Shape cache_shape = {b.n_blocks, c.n_head_kv, c.block_size, c.head_dim};
    const auto kb = encode(random_normal(size_t(shape_numel(cache_shape)), 19), DType::bf16);
    const auto vb = encode(random_normal(size_t(shape_numel(cache_shape)), 20), DType::bf16);
    Tensor kg = g->alloc(DType::bf16, cache_shape), vg = g->alloc(DType::bf16, cache_shape);
    g->write(kg, kb.data(), kg.nbytes());
    g->write(vg, vb.data(), vg.nbytes());
    const auto q = random_normal(size_t(b.n_tokens * c.n_head * c.head_dim), 21);
    Tensor qt = g->alloc(DType::f32, {b.n_tokens, c.n_head, c.head_dim});
    g->write(qt, q.data(), qt.nbytes());
    Tensor qsl = g->alloc(DType::i32, {b.n_seqs + 1}), sl = g->alloc(DType::i32, {b.n_seqs});
    Tensor bt = g->alloc(DType::i32, {b.n_seqs, b.max_blocks});
    g->write(qsl, b.qsl.data(), qsl.nbytes());
    g->write(sl, b.seq_lens.data(), sl.nbytes());
    g->write(bt, b.block_table.data(), bt.nbytes());
    Tensor o1 = g->alloc(DType::f32, {b.n_tokens, c.n_head * c.head_dim}), o2 = g->alloc(DType::f32, o1.shape);
    g->attention(qt, kg, vg, qsl, sl, bt, o1);
    g->attention(qt, kg, vg, qsl, sl, bt, o2);
    EXPECT_TRUE(read<float>(*g, o1) == read<float>(*g, o2));
  }
}

TEST_F(CudaAttention, EmptyStepsAreNoOps) {
  // No tokens at all, and sequences that all have q_len 0: nothing to do, nothing thrown.
  const int64_t n_head = 8, n_head_kv = 2, head_dim = 64, block_size = 16;
  Tensor kg = gpu_->alloc(DType::bf16, {4, n_head_kv, block_size, head_dim}), vg = gpu_->alloc(DType::bf16, kg.shape);
  Tensor q = gpu_->alloc(DType::f32, {0, n_head, head_dim}), out = gpu_->alloc(DType::f32, {0, n_head * head_dim});
  Tensor k = gpu_->alloc(DType::f32, {0, n_head_kv, head_dim}), slots = gpu_->alloc(DType::i32, {0});
  Tensor freq = gpu_->alloc(DType::f32, {head_dim / 2});
  EXPECT_NO_THROW(gpu_->rope_kv_write(q, k, k, slots, freq, slots, kg, vg));
  for (int64_t n_seqs : {0, 2}) {
    const std::vector<int32_t> qsl(size_t(n_seqs + 1), 0), lens = {5, 7}, table = {3, 0, 1, 2};
    Tensor qt = gpu_->alloc(DType::i32, {n_seqs + 1}), sl = gpu_->alloc(DType::i32, {n_seqs});
    Tensor bt = gpu_->alloc(DType::i32, {n_seqs, 2});
    gpu_->write(qt, qsl.data(), qt.nbytes());
    gpu_->write(sl, lens.data(), sl.nbytes());
    gpu_->write(bt, table.data(), bt.nbytes());
    EXPECT_NO_THROW(gpu_->attention(q, kg, vg, qt, sl, bt, out)) << n_seqs << " sequences";
  }
  std::vector<float> sync(1);
  Tensor probe = gpu_->alloc(DType::f32, {1});
  EXPECT_NO_THROW(gpu_->read(probe, sync.data(), 4));  // surfaces any asynchronous launch error
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

// Copy on write of KV blocks: whole outermost slices, bf16 like the device cache.
TEST_F(CudaVsCpu, CopyBlocksCopiesWholeBlocks) {
  const Shape cache{9, 8, 16, 128};  // [n_blocks, n_head_kv, block_size, head_dim]
  const auto v = encode(random_normal(size_t(shape_numel(cache)), 31), DType::bf16);
  auto t = input(DType::bf16, cache, v.data());
  const std::vector<std::pair<int32_t, int32_t>> pairs = {{3, 7}, {1, 2}, {8, 0}};
  cpu_->copy_blocks(t.cpu, pairs);
  gpu_->copy_blocks(t.gpu, pairs);
  EXPECT_EQ(read<uint16_t>(*gpu_, t.gpu), read<uint16_t>(*cpu_, t.cpu));
  // And the CPU result is what the pairs say, against the original bytes.
  const auto after = read<uint16_t>(*cpu_, t.cpu);
  const size_t block = size_t(shape_numel(cache) / cache[0]);
  const auto* before = reinterpret_cast<const uint16_t*>(v.data());
  for (auto [from, to] : pairs)
    EXPECT_TRUE(std::equal(after.begin() + long(size_t(to) * block), after.begin() + long(size_t(to + 1) * block),
                           before + size_t(from) * block));
}

// The first index of the largest value (std::max_element), with ties placed on purpose.
TEST_F(CudaVsCpu, ArgmaxMatchesIncludingTies) {
  for (Shape s : {Shape{5, 128256}, Shape{3, 1001}, Shape{2, 7}, Shape{1, 1}}) {
    const int64_t n_rows = s[0], n = s[1];
    auto x = random_normal(size_t(n_rows * n), 27, 3.f);
    if (n > 3) {
      x[size_t(n) - 1] = x[2] = 50.f;                  // row 0: a tie, the lower index wins
      if (n_rows > 1) x[size_t(2 * n) - 1] = 60.f;    // row 1: the last column
    }
    auto xt = input(DType::f32, s, x.data());
    auto out = output(DType::i32, {n_rows});
    cpu_->argmax(xt.cpu, out.cpu);
    gpu_->argmax(xt.gpu, out.gpu);
    EXPECT_EQ(read<int32_t>(*gpu_, out.gpu), read<int32_t>(*cpu_, out.cpu)) << "argmax " << shape_str(s);
  }
}

// Sampling on the device (Backend::sample) against the host's chain, at Llama 3's vocabulary:
// every step of the chain, penalties, logprobs, several tokens from one row, prompt scores.
TEST_F(CudaVsCpu, SampleMatchesTheHostSampler) {
  using namespace sampling_cases;
  constexpr int kVocab = 128256, kRows = 3;
  std::mt19937 rng(21);
  const std::vector<float> logits = random_rows(kRows, kVocab, rng);
  std::vector<int32_t> prompt(5000), generated(300);
  std::uniform_int_distribution<int32_t> id(0, kVocab - 1);
  for (int32_t& t : prompt) t = id(rng);
  for (int32_t& t : generated) t = id(rng) % 500;
  SamplingParams penalised = params(0.9f, 50, 0.95f);
  penalised.repetition_penalty = 1.3f, penalised.frequency_penalty = 0.4f, penalised.presence_penalty = 0.3f;
  const SamplingParams configs[] = {params(0.f), params(1.f), params(0.7f, 40), params(1.3f, 0, 0.9f),
                                    params(1.f, 0, 1.f, 0.05f), params(0.8f, 50, 0.8f, 0.02f), params(1e-30f),
                                    penalised};
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<Case> cases;
  for (const SamplingParams& p : configs)
    for (int j = 0; j < 4; ++j)
      cases.push_back({p, j % kRows, unit(rng), j == 1 ? 5 : j == 2 ? 20 : 0, p.penalised() ? prompt : std::vector<int32_t>{},
                       p.penalised() ? generated : std::vector<int32_t>{}});
  for (int32_t token : {0, 4242, kVocab - 1}) cases.push_back({params(0.f), token % kRows, 0.0, 0, {}, {}, token});
  PenaltyTokens pt(prompt);
  pt.update(generated);
  std::vector<SampleSpec> specs;
  for (const Case& c : cases) {
    SampleSpec s;
    s.row = c.row;
    s.params = c.params;
    s.u = c.u;
    s.n_top = c.n_top;
    s.score_token = c.score_token;
    if (c.params.penalised()) s.penalty_ids = pt.ids(), s.penalty_counts = pt.counts();
    specs.push_back(s);
  }
  auto x = input(DType::f32, {kRows, kVocab}, logits.data());
  expect_host_picks(logits, kVocab, cases, gpu_->sample(x.gpu, specs));
}

// --- one layer, end to end ---------------------------------------------------------

// The ops chained as one Llama layer does (bf16 weights, 4:1 GQA, each backend's own KV cache type
// through shuffled blocks), over two steps: two prefills in one batch, then a decode token next to
// a prefill chunk. Hand-offs between ops (shapes, strides, slot_mapping, block tables) are checked too.
TEST_F(CudaVsCpu, OneLlamaLayerMatches) {
  const int64_t n_embd = 512, n_head = 8, n_head_kv = 2, head_dim = 64, n_ff = 1376, n_vocab = 300;
  const int64_t block_size = 16, n_blocks = 12, max_blocks = 4;
  const int64_t q_dim = n_head * head_dim, kv_dim = n_head_kv * head_dim;
  const DType wt = DType::bf16;
  uint32_t seed = 100;
  auto make_w = [&](Shape s, float scale) {
    const auto v = encode(random_normal(size_t(shape_numel(s)), seed++, scale), wt);
    return weight(wt, std::move(s), v.data());
  };
  auto tok_emb = make_w({n_vocab, n_embd}, 1.f);
  auto attn_norm = make_w({n_embd}, 1.f), ffn_norm = make_w({n_embd}, 1.f), next_norm = make_w({n_embd}, 1.f);
  const float s_in = 1.f / std::sqrt(float(n_embd)), s_ff = 1.f / std::sqrt(float(n_ff));
  auto wq = make_w({q_dim, n_embd}, s_in), wk = make_w({kv_dim, n_embd}, s_in), wv = make_w({kv_dim, n_embd}, s_in);
  auto wo = make_w({n_embd, q_dim}, s_in), wg = make_w({n_ff, n_embd}, s_in), wu = make_w({n_ff, n_embd}, s_in);
  auto wd = make_w({n_embd, n_ff}, s_ff);
  std::vector<float> inv_freq(static_cast<size_t>(head_dim / 2));
  for (size_t i = 0; i < inv_freq.size(); ++i) inv_freq[i] = std::pow(500000.f, -float(2 * i) / float(head_dim));
  auto freq = input(DType::f32, {head_dim / 2}, inv_freq.data());
  const Shape cache_shape = {n_blocks, n_head_kv, block_size, head_dim};
  Both kc{cpu_->alloc(cpu_->kv_dtype(), cache_shape), gpu_->alloc(gpu_->kv_dtype(), cache_shape)};
  Both vc{cpu_->alloc(cpu_->kv_dtype(), cache_shape), gpu_->alloc(gpu_->kv_dtype(), cache_shape)};
  // Sequence A owns blocks 7, 2, 10; sequence B owns 0, 9 (neither in order nor adjacent).
  const std::vector<int32_t> block_table = {7, 2, 10, -1, 0, 9, -1, -1};  // [2, max_blocks]

  // One step over both sequences: q_len[s] new tokens after n_past[s] cached ones.
  auto step = [&](Backend& b, bool on_gpu, const std::vector<int32_t>& n_past, const std::vector<int32_t>& q_len) {
    auto pick = [&](Both& t) -> Tensor& { return on_gpu ? t.gpu : t.cpu; };
    std::vector<int32_t> ids, pos, slots, qsl = {0}, seq_lens;
    std::mt19937 rng(uint32_t(26 + n_past[0]));
    for (size_t s = 0; s < 2; ++s) {
      for (int32_t j = 0; j < q_len[s]; ++j) {
        const int32_t p = n_past[s] + j;
        ids.push_back(int32_t(rng() % n_vocab));
        pos.push_back(p);
        const int32_t block = block_table[s * max_blocks + size_t(p / block_size)];
        slots.push_back(block * int32_t(block_size) + p % int32_t(block_size));
      }
      qsl.push_back(qsl.back() + q_len[s]);
      seq_lens.push_back(n_past[s] + q_len[s]);
    }
    const int64_t n = int64_t(ids.size());
    Tensor id = b.alloc(DType::i32, {n}), p = b.alloc(DType::i32, {n}), sm = b.alloc(DType::i32, {n});
    Tensor qs = b.alloc(DType::i32, {3}), sl = b.alloc(DType::i32, {2}), bt = b.alloc(DType::i32, {2, max_blocks});
    b.write(id, ids.data(), size_t(n) * 4);
    b.write(p, pos.data(), size_t(n) * 4);
    b.write(sm, slots.data(), size_t(n) * 4);
    b.write(qs, qsl.data(), 12);
    b.write(sl, seq_lens.data(), 8);
    b.write(bt, block_table.data(), block_table.size() * 4);
    Tensor x = b.alloc(DType::f32, {n, n_embd}), h = b.alloc(DType::f32, {n, n_embd});
    Tensor q = b.alloc(DType::f32, {n, n_head, head_dim}), k = b.alloc(DType::f32, {n, n_head_kv, head_dim});
    Tensor v = b.alloc(DType::f32, {n, n_head_kv, head_dim}), a = b.alloc(DType::f32, {n, q_dim});
    Tensor o = b.alloc(DType::f32, {n, n_embd}), g = b.alloc(DType::f32, {n, n_ff}), u = b.alloc(DType::f32, {n, n_ff});
    b.embed(pick(tok_emb), id, x);
    b.rms_norm(x, pick(attn_norm), 1e-5f, h);
    b.matmul(h, pick(wq), q);
    b.matmul(h, pick(wk), k);
    b.matmul(h, pick(wv), v);
    b.rope_kv_write(q, k, v, p, pick(freq), sm, pick(kc), pick(vc));
    b.attention(q, pick(kc), pick(vc), qs, sl, bt, a);
    b.matmul(a, pick(wo), o);
    b.add_rms_norm(x, o, pick(ffn_norm), 1e-5f, o);  // out in o's memory, as the model does
    b.matmul(o, pick(wg), g);
    b.matmul(o, pick(wu), u);
    b.silu_mul(g, u, g);
    b.matmul(g, pick(wd), o);
    // The layer boundary as the model fuses it: the residual add with the next layer's input norm.
    b.add_rms_norm(x, o, pick(next_norm), 1e-5f, h);
    std::vector<float> out(static_cast<size_t>(2 * n * n_embd));  // [x; next layer's normed input]
    b.read(x, out.data(), size_t(n * n_embd) * 4);
    b.read(h, out.data() + n * n_embd, size_t(n * n_embd) * 4);
    return out;
  };
  // Activations are rounded to bf16 before each of 7 products and K/V are stored as bf16 on the
  // GPU: relative errors of a few 2^-8.
  const auto want = step(*cpu_, false, {0, 0}, {37, 20});
  const auto got = step(*gpu_, true, {0, 0}, {37, 20});
  expect_close(got, want, 2e-2f, 2e-2f, "one layer, prefills of 37 and 20 in one batch");
  const auto want1 = step(*cpu_, false, {37, 20}, {1, 5});
  const auto got1 = step(*gpu_, true, {37, 20}, {1, 5});
  expect_close(got1, want1, 2e-2f, 2e-2f, "one layer, a decode token next to a chunk of 5");
}

}  // namespace
}  // namespace herd
