// Times each kernel (and cuBLAS at our matmul shapes) at Llama 3.1 8B sizes with CUDA events after
// warm-up, and prints the median in µs with GB/s (memory-bound ops) or TFLOP/s (products).
// Two ceilings measured on the same card frame the numbers: a big device-to-device copy and an
// 8192^3 bf16 GEMM. Usage: bench-kernels [report.json]
//
// Inputs are random (never zeros: zeros make some units faster). Small decode-sized buffers stay in
// L2 between iterations, so their GB/s can exceed DRAM bandwidth; the big ones (attention at 32K,
// the LM head) do not.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/add-rmsnorm.cuh"
#include "kernels/argmax.cuh"
#include "kernels/sampling.cuh"
#include "kernels/cast.cuh"
#include "kernels/dense-gemv.cuh"
#include "kernels/embed.cuh"
#include "kernels/attention-tiles.cuh"
#include "backend/cuda/fp8-gemm.h"
#include "kernels/flash-attention.cuh"
#include "kernels/fp8-rows.cuh"
#include "kernels/paged-attention.cuh"
#include "kernels/quant-matmul.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/rope-kv-write.cuh"
#include "kernels/silu-mul.cuh"

namespace k = herd::kernels;

#define CHECK_CUDA(expr)                                                                        \
  do {                                                                                          \
    const cudaError_t e_ = (expr);                                                              \
    if (e_ != cudaSuccess) {                                                                    \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

#define CHECK_CUBLAS(expr)                                                                      \
  do {                                                                                          \
    const cublasStatus_t s_ = (expr);                                                           \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                          \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, cublasGetStatusString(s_)); \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

namespace {

// Llama 3.1 8B.
constexpr int kEmbd = 4096, kHead = 32, kHeadKv = 8, kHeadDim = 128, kFf = 14336, kVocab = 128256;
constexpr int kBlockSize = 16;  // the engine's default KV block

struct Result {
  std::string name, shape;
  double median_us = 0, gbps = 0, tflops = 0;
};

std::vector<Result> g_results;
cudaStream_t g_stream;

// Fills with uniform [-1, 1) (f32) by a simple hash on the device: fast, reproducible, non-zero.
__global__ void fill_kernel(float* p, size_t n, uint32_t seed, float scale) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 16, h *= 0x7feb352du, h ^= h >> 15, h *= 0x846ca68bu, h ^= h >> 16;
    p[i] = scale * (float(h >> 8) * (1.0f / 8388608.0f) - 1.0f);
  }
}

float* dev_f32(size_t n, uint32_t seed, float scale = 1.f) {
  float* p = nullptr;
  CHECK_CUDA(cudaMalloc(&p, std::max<size_t>(n, 1) * 4));
  fill_kernel<<<1024, 256, 0, g_stream>>>(p, n, seed, scale);
  CHECK_CUDA(cudaGetLastError());
  return p;
}

// n elements of type t holding random values (cast from f32 on the device).
void* dev_typed(size_t n, k::ElemType t, uint32_t seed, float scale = 1.f) {
  float* f = dev_f32(n, seed, scale);
  if (t == k::ElemType::f32) return f;
  void* p = nullptr;
  CHECK_CUDA(cudaMalloc(&p, std::max<size_t>(n, 1) * 2));
  CHECK_CUDA(k::cast_f32(f, p, t, int64_t(n), g_stream));
  CHECK_CUDA(cudaStreamSynchronize(g_stream));
  CHECK_CUDA(cudaFree(f));
  return p;
}

// n random E4M3 codes (no NaN: 0x7f and 0xff are skipped), as an FP8 KV cache holds.
void* dev_fp8(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> h(n);
  for (uint8_t& b : h) {
    do b = uint8_t(rng()); while ((b & 0x7f) == 0x7f);
  }
  void* p = nullptr;
  CHECK_CUDA(cudaMalloc(&p, std::max<size_t>(n, 1)));
  CHECK_CUDA(cudaMemcpy(p, h.data(), n, cudaMemcpyHostToDevice));
  return p;
}

int32_t* dev_i32(const std::vector<int32_t>& v) {
  int32_t* p = nullptr;
  CHECK_CUDA(cudaMalloc(&p, std::max<size_t>(v.size(), 1) * 4));
  CHECK_CUDA(cudaMemcpy(p, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
  return p;
}

// Median over timed runs of fn (each bracketed by events) after warm-up; at least 5 runs, more
// while under ~0.3 s, at most 100.
template <typename F>
double median_us(F&& fn) {
  for (int i = 0; i < 3; ++i) fn();
  CHECK_CUDA(cudaStreamSynchronize(g_stream));
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  std::vector<double> t;
  double total = 0;
  while (t.size() < 5 || (t.size() < 100 && total < 3e5)) {
    CHECK_CUDA(cudaEventRecord(a, g_stream));
    fn();
    CHECK_CUDA(cudaEventRecord(b, g_stream));
    CHECK_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms * 1e3);
    total += ms * 1e3;
  }
  CHECK_CUDA(cudaEventDestroy(a));
  CHECK_CUDA(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

template <typename F>
void bench(const std::string& name, const std::string& shape, double bytes, double flops, F&& fn) {
  Result r{name, shape, median_us(fn), 0, 0};
  r.gbps = bytes / (r.median_us * 1e-6) / 1e9;
  r.tflops = flops / (r.median_us * 1e-6) / 1e12;
  std::printf("%-28s %-34s %10.2f us %9.1f GB/s %8.2f TFLOP/s\n", name.c_str(), shape.c_str(), r.median_us, r.gbps,
              r.tflops);
  std::fflush(stdout);
  g_results.push_back(r);
}

std::string dims(std::initializer_list<long long> d) {
  std::string s = "[";
  for (long long x : d) s += (s.size() > 1 ? ", " : "") + std::to_string(x);
  return s + "]";
}

// Each wrapper exits on an error: a failing launch must not be timed as a fast one.
void ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* json_path = argc > 1 ? argv[1] : nullptr;
  int dev = 0, n_sm = 0;
  CHECK_CUDA(cudaSetDevice(dev));
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, dev));
  CHECK_CUDA(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev));
  std::printf("device: %s, %d SMs, %.1f GB, L2 %d MB\n", prop.name, n_sm, double(prop.totalGlobalMem) / 1e9,
              prop.l2CacheSize >> 20);
  CHECK_CUDA(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
  cublasHandle_t blas;
  CHECK_CUBLAS(cublasCreate(&blas));
  CHECK_CUBLAS(cublasSetStream(blas, g_stream));
  void* blas_ws = nullptr;
  CHECK_CUDA(cudaMalloc(&blas_ws, size_t(32) << 20));
  CHECK_CUBLAS(cublasSetWorkspace(blas, blas_ws, size_t(32) << 20));

  // --- ceilings ---
  {
    const size_t n = size_t(1) << 30;
    void *src = dev_f32(n / 4, 1), *dst = nullptr;
    CHECK_CUDA(cudaMalloc(&dst, n));
    bench("ceiling: d2d copy", "1 GiB", 2.0 * double(n), 0,
          [&] { CHECK_CUDA(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, g_stream)); });
    CHECK_CUDA(cudaFree(src));
    CHECK_CUDA(cudaFree(dst));
  }
  {
    const int n = 8192;
    void* a = dev_typed(size_t(n) * n, k::ElemType::bf16, 2);
    void* b = dev_typed(size_t(n) * n, k::ElemType::bf16, 3);
    void* c = dev_typed(size_t(n) * n, k::ElemType::bf16, 4);
    const float alpha = 1, beta = 0;
    bench("ceiling: gemm bf16", "8192^3", 0, 2.0 * n * double(n) * n, [&] {
      CHECK_CUBLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b, CUDA_R_16BF, n,
                                &beta, c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    });
    CHECK_CUDA(cudaFree(a));
    CHECK_CUDA(cudaFree(b));
    CHECK_CUDA(cudaFree(c));
  }

  // --- matmuls as the backend runs them: x cast to bf16, f32 out ---
  {
    struct Mm {
      const char* name;
      int m, kdim;
    };
    const Mm mms[] = {{"matmul q", kHead * kHeadDim, kEmbd},   {"matmul k/v", kHeadKv * kHeadDim, kEmbd},
                      {"matmul o", kEmbd, kHead * kHeadDim},   {"matmul gate/up", kFf, kEmbd},
                      {"matmul down", kEmbd, kFf},             {"matmul lm_head", kVocab, kEmbd}};
    for (const Mm& mm : mms) {
      void* w = dev_typed(size_t(mm.m) * mm.kdim, k::ElemType::bf16, 5);
      for (int n : {1, 512}) {
        float* x = dev_f32(size_t(n) * mm.kdim, 6);
        void* xb = dev_typed(size_t(n) * mm.kdim, k::ElemType::bf16, 6);
        float* out = dev_f32(size_t(n) * mm.m, 7);
        const float alpha = 1, beta = 0;
        const double bytes = 2.0 * mm.m * mm.kdim + 4.0 * n * mm.kdim + 4.0 * n * mm.m;
        bench(mm.name, dims({n, mm.kdim}) + " x " + dims({mm.m, mm.kdim}) + "^T", bytes, 2.0 * n * mm.m * mm.kdim,
              [&] {
                ok(k::cast_f32(x, xb, k::ElemType::bf16, int64_t(n) * mm.kdim, g_stream), "cast");
                CHECK_CUBLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, mm.m, n, mm.kdim, &alpha, w, CUDA_R_16BF,
                                          mm.kdim, xb, CUDA_R_16BF, mm.kdim, &beta, out, CUDA_R_32F, mm.m,
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
              });
        CHECK_CUDA(cudaFree(x));
        CHECK_CUDA(cudaFree(xb));
        CHECK_CUDA(cudaFree(out));
      }
      CHECK_CUDA(cudaFree(w));
    }
  }

  // The last row's GB/s as a share of the copy ceiling (measured first), printed under it.
  auto print_copy_share = [] {
    std::printf("%-28s %.0f%% of the copy ceiling\n", "", 100.0 * g_results.back().gbps / g_results.front().gbps);
  };

  // --- bf16 weights at decode: the GEMV (dense_gemv) against x cast to bf16 + cuBLAS, 1 to 16 tokens,
  // each Llama 3.1 8B and 70B projection (q, k and v in one launch; gate and up in one), GB/s of
  // the weight bytes + activations next to the copy ceiling. The backend sends up to
  // kDenseGemvMaxTokens tokens to the GEMV: these rows say where cuBLAS overtakes it.
  {
    struct Proj {
      const char* name;
      std::vector<int> rows;  // the parts of one launch
      int kdim;
    };
    const Proj projs[] = {{"8B qkv", {4096, 1024, 1024}, 4096},   {"8B o", {4096}, 4096},
                          {"8B gate+up", {14336, 14336}, 4096},   {"8B down", {4096}, 14336},
                          {"70B qkv", {8192, 1024, 1024}, 8192},  {"70B o", {8192}, 8192},
                          {"70B gate+up", {28672, 28672}, 8192},  {"70B down", {8192}, 28672},
                          {"8B lm_head", {kVocab}, 4096}};
    for (const Proj& pr : projs) {
      const int m = std::accumulate(pr.rows.begin(), pr.rows.end(), 0);
      void* w = dev_typed(size_t(m) * pr.kdim, k::ElemType::bf16, 34);
      for (int n : {1, 2, 4, 8, 16}) {
        float* x = dev_f32(size_t(n) * pr.kdim, 35);
        void* xb = dev_typed(size_t(n) * pr.kdim, k::ElemType::bf16, 35);
        float* out = dev_f32(size_t(n) * m, 36);
        const double bytes = 2.0 * m * pr.kdim + 4.0 * n * pr.kdim + 4.0 * n * m;
        const std::string shape = dims({n, pr.kdim}) + " x " + dims({m, pr.kdim}) + "^T";
        if (n <= k::kDenseGemvMaxTokens) {
          std::vector<k::GemvPart> parts;
          size_t r0 = 0;
          for (int rows : pr.rows) {
            parts.push_back({static_cast<const char*>(w) + r0 * pr.kdim * 2, out + r0 * size_t(n), rows});
            r0 += size_t(rows);
          }
          bench(std::string("gemv bf16 ") + pr.name, shape, bytes, 2.0 * n * m * pr.kdim, [&] {
            ok(k::dense_gemv(parts.data(), int(parts.size()), k::ElemType::bf16, pr.kdim, x, n, g_stream),
               "dense_gemv");
          });
          print_copy_share();
        }
        const float alpha = 1, beta = 0;
        bench(std::string("cublas bf16 ") + pr.name, shape, bytes, 2.0 * n * m * pr.kdim, [&] {
          ok(k::cast_f32(x, xb, k::ElemType::bf16, int64_t(n) * pr.kdim, g_stream), "cast");
          CHECK_CUBLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, pr.kdim, &alpha, w, CUDA_R_16BF, pr.kdim, xb,
                                    CUDA_R_16BF, pr.kdim, &beta, out, CUDA_R_32F, m, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT));
        });
        print_copy_share();
        CHECK_CUDA(cudaFree(x));
        CHECK_CUDA(cudaFree(xb));
        CHECK_CUDA(cudaFree(out));
      }
      CHECK_CUDA(cudaFree(w));
    }
  }

  // --- FP8 rows (E4M3 codes, a scale per row: the backend's layout for FP8 checkpoints): the GEMV at
  // 1 and 8 tokens (GB/s against the copy ceiling), and at 512 tokens the per-token activation
  // quantization plus cuBLASLt's FP8 GEMM (TFLOP/s) beside the BF16 cuBLAS GEMM above.
  {
    struct Shape {
      const char* name;
      int m, kdim;
    };
    const Shape projs[] = {{"8B q/o", 4096, 4096}, {"8B gate+up", 28672, 4096}, {"8B down", 4096, 14336},
                           {"70B gate+up", 57344, 8192}};
    herd::Fp8Gemm fp8_gemm(prop.major * 10 + prop.minor >= 89, g_stream, blas_ws, size_t(32) << 20);
    for (const Shape& pr : projs) {
      void* codes = dev_fp8(size_t(pr.m) * pr.kdim, 37);
      float* scales = dev_f32(size_t(pr.m), 38, 0.01f);
      for (int n : {1, 8, 512}) {
        float* x = dev_f32(size_t(n) * pr.kdim, 39);
        float* out = dev_f32(size_t(n) * pr.m, 40);
        const std::string shape = dims({n, pr.kdim}) + " x " + dims({pr.m, pr.kdim}) + "^T";
        const double flops = 2.0 * n * pr.m * pr.kdim;
        if (n <= k::kDenseGemvMaxTokens) {
          const k::GemvPart part{codes, out, pr.m, scales};
          const double bytes = double(pr.m) * pr.kdim + 4.0 * pr.m + 4.0 * n * pr.kdim + 4.0 * n * pr.m;
          bench(std::string("gemv fp8 rows ") + pr.name, shape, bytes, flops, [&] {
            ok(k::dense_gemv(&part, 1, k::ElemType::fp8_e4m3, pr.kdim, x, n, g_stream), "dense_gemv fp8");
          });
          print_copy_share();
        } else {
          void* xq = dev_fp8(size_t(n) * pr.kdim, 41);
          float* x_scales = dev_f32(size_t(n), 42, 0.01f);
          bool ran = true;
          bench(std::string("fp8 gemm (quantize + cublasLt) ") + pr.name, shape, 0, flops, [&] {
            ok(k::fp8_rows_quantize(x, n, pr.kdim, pr.kdim, xq, x_scales, g_stream), "fp8_rows_quantize");
            ran = fp8_gemm.run(codes, scales, pr.m, xq, x_scales, n, pr.kdim, out);
          });
          if (!ran) std::printf("%-28s no cuBLASLt FP8 kernel here: the row above timed the quantization only\n", "");
          CHECK_CUDA(cudaFree(xq));
          CHECK_CUDA(cudaFree(x_scales));
        }
        CHECK_CUDA(cudaFree(x));
        CHECK_CUDA(cudaFree(out));
      }
      CHECK_CUDA(cudaFree(codes));
      CHECK_CUDA(cudaFree(scales));
    }
  }

  // --- quantized weights read in their blocks (decode GEMV), Llama 3.1 8B and 70B projections ---
  // Random bytes: timing does not depend on the values. GB/s counts the weight's stored bytes plus
  // activations and outputs, against the d2d copy above.
  {
    struct Qmm {
      const char* name;
      int m, kdim;
    };
    const Qmm shapes[] = {{"8B q/o", 4096, 4096},    {"8B gate/up", 14336, 4096}, {"8B down", 4096, 14336},
                          {"70B q/o", 8192, 8192},   {"70B gate/up", 28672, 8192}, {"70B down", 8192, 28672}};
    const std::pair<const char*, k::QuantType> types[] = {
        {"fp8", k::QuantType::fp8}, {"int4", k::QuantType::int4}, {"q8_0", k::QuantType::q8_0},
        {"q4_k", k::QuantType::q4_k}, {"q6_k", k::QuantType::q6_k}};
    for (const auto& type : types)
      for (const Qmm& mm : shapes) {
        const char* tname = type.first;
        const k::QuantType qt = type.second;
        const size_t wbytes = size_t(k::quant_row_bytes(qt, mm.kdim)) * size_t(mm.m);
        void* w = dev_f32((wbytes + 3) / 4, 31);  // any bytes
        for (int n : {1, 8}) {
          float* x = dev_f32(size_t(n) * mm.kdim, 32);
          float* out = dev_f32(size_t(n) * mm.m, 33);
          const double bytes = double(wbytes) + 4.0 * n * mm.kdim + 4.0 * n * mm.m;
          bench(std::string("gemv ") + tname + " " + mm.name, dims({n, mm.kdim}) + " x " + dims({mm.m, mm.kdim}) + "^T",
                bytes, 2.0 * n * mm.m * mm.kdim,
                [&] { ok(k::quant_gemv(w, qt, mm.m, mm.kdim, x, out, n, g_stream), "quant_gemv"); });
          CHECK_CUDA(cudaFree(x));
          CHECK_CUDA(cudaFree(out));
        }
        CHECK_CUDA(cudaFree(w));
      }
  }

  // --- elementwise and row ops, decode (1) and prefill (512) ---
  for (int n : {1, 512}) {
    std::vector<int32_t> ids(static_cast<size_t>(n)), pos(static_cast<size_t>(n)), rows(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i)
      ids[size_t(i)] = int32_t((i * 7919) % kVocab), pos[size_t(i)] = 1000 + i, rows[size_t(i)] = n - 1 - i;
    int32_t* d_ids = dev_i32(ids);
    int32_t* d_pos = dev_i32(pos);
    int32_t* d_rows = dev_i32(rows);
    void* table = dev_typed(size_t(kVocab) * kEmbd, k::ElemType::bf16, 8);
    float* x = dev_f32(size_t(n) * kEmbd, 9);
    float* y = dev_f32(size_t(n) * kEmbd, 10);
    void* w = dev_typed(kEmbd, k::ElemType::bf16, 11);
    float* q = dev_f32(size_t(n) * kHead * kHeadDim, 12);
    float* kk = dev_f32(size_t(n) * kHeadKv * kHeadDim, 13);
    float* vv = dev_f32(size_t(n) * kHeadKv * kHeadDim, 26);
    float* g = dev_f32(size_t(n) * kFf, 14, 4.f);
    float* u = dev_f32(size_t(n) * kFf, 15);
    float* h = dev_f32(size_t(n) * kFf, 16);
    void* hb = dev_typed(size_t(n) * kFf, k::ElemType::bf16, 17);
    float* inv_freq = dev_f32(kHeadDim / 2, 18, 0.5f);
    // The step's tokens land in random slots of a 4096-token paged cache.
    const int n_blocks = 4096 / kBlockSize;
    std::vector<int32_t> slots(size_t(n_blocks) * kBlockSize);
    std::iota(slots.begin(), slots.end(), 0);
    std::shuffle(slots.begin(), slots.end(), std::mt19937(1));
    slots.resize(size_t(n));
    int32_t* d_slots = dev_i32(slots);
    void* kc = dev_typed(size_t(n_blocks) * kBlockSize * kHeadKv * kHeadDim, k::ElemType::bf16, 19);
    void* vc = dev_typed(size_t(n_blocks) * kBlockSize * kHeadKv * kHeadDim, k::ElemType::bf16, 20);
    const std::string tok = std::to_string(n) + " tok";

    bench("embed bf16", tok + " x 4096", double(n) * kEmbd * 6, 0,
          [&] { ok(k::embed(table, k::ElemType::bf16, d_ids, x, n, kEmbd, kVocab, g_stream), "embed"); });
    bench("rmsnorm (bf16 w)", dims({n, kEmbd}), double(n) * kEmbd * 8 + kEmbd * 2, 0, [&] {
      ok(k::rmsnorm(x, w, k::ElemType::bf16, y, n, kEmbd, kEmbd, kEmbd, 1e-5f, g_stream), "rmsnorm");
    });
    bench("add_rmsnorm (bf16 w)", dims({n, kEmbd}), double(n) * kEmbd * 16 + kEmbd * 2, 0, [&] {
      ok(k::add_rmsnorm(x, y, w, k::ElemType::bf16, h, n, kEmbd, kEmbd, kEmbd, kEmbd, 1e-5f, g_stream), "add_rmsnorm");
    });
    // q and k read and written in place, v read, rotated k and v written to the bf16 cache.
    const double qkv_bytes = double(n) * (8.0 * kHead * kHeadDim + 16.0 * kHeadKv * kHeadDim);
    bench("rope_kv_write -> bf16 paged", dims({n, kHead, kHeadDim}) + " + 2 x " + dims({n, kHeadKv, kHeadDim}),
          qkv_bytes, 0, [&] {
            ok(k::rope_kv_write(q, kk, vv, d_pos, inv_freq, d_slots, kc, vc, k::ElemType::bf16, 1.f, 1.f, n, kHead, kHeadKv,
                                kHeadDim, kBlockSize, n_blocks, int64_t(kHead) * kHeadDim, int64_t(kHeadKv) * kHeadDim,
                                int64_t(kHeadKv) * kHeadDim, g_stream),
               "rope_kv_write");
          });
    bench("silu_mul", dims({n, kFf}), double(n) * kFf * 12, 0,
          [&] { ok(k::silu_mul(g, u, h, n, kFf, kFf, kFf, kFf, g_stream), "silu_mul"); });
    bench("cast f32->bf16", dims({n, kFf}), double(n) * kFf * 6, 0,
          [&] { ok(k::cast_f32(h, hb, k::ElemType::bf16, int64_t(n) * kFf, g_stream), "cast"); });
    bench("embed f32 (pick rows)", dims({n, kEmbd}), double(n) * kEmbd * 8, 0,
          [&] { ok(k::embed(x, k::ElemType::f32, d_rows, y, n, kEmbd, n, g_stream), "embed f32"); });
    for (void* p : {table, w, hb, kc, vc}) CHECK_CUDA(cudaFree(p));
    for (float* p : {x, y, q, kk, vv, g, u, h, inv_freq}) CHECK_CUDA(cudaFree(p));
    CHECK_CUDA(cudaFree(d_ids));
    CHECK_CUDA(cudaFree(d_pos));
    CHECK_CUDA(cudaFree(d_rows));
    CHECK_CUDA(cudaFree(d_slots));
  }

  // --- argmax over the vocabulary ---
  for (int rows : {1, 64}) {
    float* logits = dev_f32(size_t(rows) * kVocab, 21, 10.f);
    int32_t* out = nullptr;
    CHECK_CUDA(cudaMalloc(&out, size_t(rows) * 4));
    bench("argmax", dims({rows, kVocab}), double(rows) * kVocab * 4, 0,
          [&] { ok(k::argmax(logits, out, rows, kVocab, kVocab, g_stream), "argmax"); });
    CHECK_CUDA(cudaFree(logits));
    CHECK_CUDA(cudaFree(out));
  }

  // --- the sampler chain on the device: what a sampled step costs instead of copying its rows ---
  // GB/s counts one read of each row; the kernel reads it several times (from L2).
  {
    struct SampleBench {
      const char* what;
      float temperature;
      int top_k;
      float top_p;
    };
    const SampleBench chains[] = {{"sample T", 1.f, 0, 1.f}, {"sample top-k 40 top-p 0.9", 0.8f, 40, 0.9f},
                                  {"sample top-p 0.9", 1.f, 0, 0.9f}};
    for (const SampleBench& c : chains)
      for (int rows : {1, 32, 64}) {
        float* logits = dev_f32(size_t(rows) * kVocab, 23, 3.f);
        std::vector<k::SampleRow> specs(static_cast<size_t>(rows));
        for (int r = 0; r < rows; ++r)
          specs[size_t(r)] = {r, c.temperature, c.top_k, c.top_p, 0.f, 1.f, 0.f, 0.f, 0, 0, 5, -1, (r + 0.5) / rows};
        k::SampleRow* d_rows = nullptr;
        k::SampleOut* out = nullptr;
        int32_t* pen = nullptr;
        float* work = nullptr;
        CHECK_CUDA(cudaMalloc(&d_rows, specs.size() * sizeof(k::SampleRow)));
        CHECK_CUDA(cudaMalloc(&out, specs.size() * sizeof(k::SampleOut)));
        CHECK_CUDA(cudaMalloc(&pen, 8));
        CHECK_CUDA(cudaMalloc(&work, size_t(rows) * kVocab * 4));
        CHECK_CUDA(cudaMemcpy(d_rows, specs.data(), specs.size() * sizeof(k::SampleRow), cudaMemcpyHostToDevice));
        bench(std::string(c.what) + " +5 logprobs", dims({rows, kVocab}), double(rows) * kVocab * 4, 0, [&] {
          ok(k::sample(logits, kVocab, kVocab, d_rows, rows, pen, pen + 1, work, out, g_stream), "sample");
        });
        for (void* p : {static_cast<void*>(logits), static_cast<void*>(d_rows), static_cast<void*>(out),
                        static_cast<void*>(pen), static_cast<void*>(work)})
          CHECK_CUDA(cudaFree(p));
      }
  }

  // --- paged attention (bf16 and FP8 caches, block 16, shuffled physical blocks) ---
  // Decode rows report GB/s of K/V read next to the copy ceiling; prefill rows TFLOP/s over the
  // (query, key) pairs the causal mask keeps. "flash" rows run the tensor-core kernel, which the
  // backend uses for steps with prefill chunks; the f32 kernel's prefill rows stop at 4K (at its
  // speed a 128K prompt takes minutes).
  {
    struct AttnBench {
      const char* name;
      int n_seqs, seq_len, q_len;
      k::ElemType cache = k::ElemType::bf16;
      bool flash = false;
    };
    const AttnBench cases[] = {{"attention decode", 1, 4096, 1},
                               {"attention decode", 1, 32768, 1},
                               {"attention decode", 1, 131072, 1},
                               {"attention decode", 32, 4096, 1},
                               {"attention prefill", 1, 512, 512},
                               {"attention prefill", 1, 4096, 4096},
                               {"flash attention prefill", 1, 512, 512, k::ElemType::bf16, true},
                               {"flash attention prefill", 1, 4096, 4096, k::ElemType::bf16, true},
                               {"flash attention prefill", 1, 32768, 32768, k::ElemType::bf16, true},
                               {"flash attention prefill", 1, 131072, 131072, k::ElemType::bf16, true},
                               {"flash attention chunk", 1, 131072, 2048, k::ElemType::bf16, true},
                               // Decode on tensor cores too (the backend sends decode steps to the f32
                               // kernel): which of the two reads K/V faster at long contexts.
                               {"flash attention decode", 1, 32768, 1, k::ElemType::bf16, true},
                               {"flash attention decode", 1, 131072, 1, k::ElemType::bf16, true},
                               {"flash attention decode", 32, 4096, 1, k::ElemType::bf16, true},
                               {"attention decode fp8 kv", 1, 4096, 1, k::ElemType::fp8_e4m3},
                               {"attention decode fp8 kv", 1, 32768, 1, k::ElemType::fp8_e4m3},
                               {"attention decode fp8 kv", 32, 4096, 1, k::ElemType::fp8_e4m3},
                               {"attention prefill fp8 kv", 1, 4096, 4096, k::ElemType::fp8_e4m3},
                               {"flash attention prefill fp8 kv", 1, 4096, 4096, k::ElemType::fp8_e4m3, true}};
    const double copy_gbps = g_results.front().gbps;  // the d2d copy ceiling, measured first
    for (const AttnBench& c : cases) {
      const int blocks_per_seq = (c.seq_len + kBlockSize - 1) / kBlockSize, n_blocks = c.n_seqs * blocks_per_seq;
      const int n_tokens = c.n_seqs * c.q_len;
      std::vector<int32_t> table(static_cast<size_t>(n_blocks)), qsl(static_cast<size_t>(c.n_seqs) + 1);
      std::vector<int32_t> lens(static_cast<size_t>(c.n_seqs), c.seq_len);
      std::iota(table.begin(), table.end(), 0);
      std::shuffle(table.begin(), table.end(), std::mt19937(2));
      for (int s = 0; s <= c.n_seqs; ++s) qsl[size_t(s)] = s * c.q_len;
      double n_pairs = 0;  // (query, key) pairs actually computed
      for (int i = 0; i < c.q_len; ++i) n_pairs += double(c.seq_len - c.q_len + i + 1) * c.n_seqs;
      int32_t* d_table = dev_i32(table);
      int32_t* d_qsl = dev_i32(qsl);
      int32_t* d_lens = dev_i32(lens);
      const size_t cache_elems = size_t(n_blocks) * kHeadKv * kBlockSize * kHeadDim;
      const bool fp8 = c.cache == k::ElemType::fp8_e4m3;
      void* kc = fp8 ? dev_fp8(cache_elems, 22) : dev_typed(cache_elems, c.cache, 22);
      void* vc = fp8 ? dev_fp8(cache_elems, 23) : dev_typed(cache_elems, c.cache, 23);
      float* q = dev_f32(size_t(n_tokens) * kHead * kHeadDim, 24, 2.f);
      float* out = dev_f32(size_t(n_tokens) * kHead * kHeadDim, 25);
      const int n_splits = c.flash ? k::flash_attention_n_splits(n_tokens, c.n_seqs, kHead, kHeadKv, n_sm)
                                   : k::paged_attention_n_splits(n_tokens, c.n_seqs, kHead, kHeadKv, n_sm);
      const size_t ws_bytes = k::attention_workspace_bytes(n_splits, n_tokens, kHead, kHeadDim);
      float* ws = nullptr;
      if (ws_bytes > 0) CHECK_CUDA(cudaMalloc(&ws, ws_bytes));
      const double kv_bytes = 2.0 * cache_elems * k::elem_size(c.cache);
      const double bytes = kv_bytes + 8.0 * n_tokens * kHead * kHeadDim;
      const double flops = 4.0 * kHead * kHeadDim * n_pairs;
      const std::string shape = std::to_string(c.n_seqs) + " seq x " + std::to_string(c.q_len) + " tok @ ctx " +
                                std::to_string(c.seq_len) + ", " + std::to_string(n_splits) + " splits";
      const auto kernel = c.flash ? k::flash_attention : k::paged_attention;
      bench(c.name, shape, bytes, flops, [&] {
        ok(kernel(q, kc, vc, d_qsl, d_lens, d_table, out, n_tokens, c.n_seqs, kHead, kHeadKv, kHeadDim, kBlockSize,
                  n_blocks, blocks_per_seq, int64_t(kHead) * kHeadDim, int64_t(kHead) * kHeadDim, c.cache,
                  (fp8 ? 0.05f : 1.f) / sqrtf(float(kHeadDim)), fp8 ? 0.02f : 1.f, n_splits, ws, g_stream),
           c.name);
      });
      if (c.q_len == 1) {
        const double kv_gbps = kv_bytes / (g_results.back().median_us * 1e-6) / 1e9;
        std::printf("%-28s K/V read at %.1f GB/s = %.0f%% of the copy ceiling (%.1f GB/s)\n", "", kv_gbps,
                    100.0 * kv_gbps / copy_gbps, copy_gbps);
      }
      for (int32_t* p : {d_table, d_qsl, d_lens}) CHECK_CUDA(cudaFree(p));
      CHECK_CUDA(cudaFree(kc));
      CHECK_CUDA(cudaFree(vc));
      CHECK_CUDA(cudaFree(q));
      CHECK_CUDA(cudaFree(out));
      if (ws) CHECK_CUDA(cudaFree(ws));
    }
  }
  CHECK_CUDA(cudaStreamSynchronize(g_stream));
  CHECK_CUDA(cudaGetLastError());

  if (json_path != nullptr) {
    FILE* f = std::fopen(json_path, "w");
    if (f == nullptr) {
      std::perror(json_path);
      return 1;
    }
    std::fprintf(f, "{\n  \"device\": \"%s\",\n  \"sm_count\": %d,\n  \"results\": [\n", prop.name, n_sm);
    for (size_t i = 0; i < g_results.size(); ++i) {
      const Result& r = g_results[i];
      std::fprintf(f,
                   "    {\"name\": \"%s\", \"shape\": \"%s\", \"median_us\": %.3f, \"gb_per_s\": %.2f, "
                   "\"tflop_per_s\": %.3f}%s\n",
                   r.name.c_str(), r.shape.c_str(), r.median_us, r.gbps, r.tflops,
                   i + 1 < g_results.size() ? "," : "");
    }
    std::fprintf(f, "  ]\n}\n");
    std::fclose(f);
    std::printf("wrote %s\n", json_path);
  }
  cublasDestroy(blas);
  cudaFree(blas_ws);
  return 0;
}
