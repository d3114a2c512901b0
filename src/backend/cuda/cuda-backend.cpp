// The CUDA backend: device memory through cudaMalloc, one stream, cuBLAS for the matmuls, our own
// kernels for everything else. Every CUDA and cuBLAS call is checked; the launchers in kernels/
// check the last error after each launch and we turn their cudaError_t into herd::Error here.
#include "backend/cuda/cuda-backend.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "backend/cuda/cuda-check.h"
#include "backend/cuda/cuda-place.h"
#include "backend/cuda/device-sampler.h"
#include "backend/cuda/fp8-gemm.h"
#include "common/check.h"
#include "common/quant.h"
#include "kernels/add-rmsnorm.cuh"
#include "kernels/argmax.cuh"
#include "kernels/cast.cuh"
#include "kernels/dense-gemv.cuh"
#include "kernels/embed.cuh"
#include "kernels/attention-tiles.cuh"
#include "kernels/flash-attention.cuh"
#include "kernels/fp8-rows.cuh"
#include "kernels/paged-attention.cuh"
#include "kernels/quant-matmul.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/rope-kv-write.cuh"
#include "kernels/silu-mul.cuh"

namespace herd {
namespace {

namespace k = herd::kernels;

// cuBLAS's advice for Hopper: 32 MiB of workspace lets it pick its fastest kernels.
constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;

k::ElemType elem_type(DType t, const char* what) {
  switch (t) {
    case DType::f32: return k::ElemType::f32;
    case DType::f16: return k::ElemType::f16;
    case DType::bf16: return k::ElemType::bf16;
    case DType::f8_e4m3: return k::ElemType::fp8_e4m3;
    default: break;  // i32, and quantized types in their blocks
  }
  HERD_CHECK(false, what, ": dtype ", dtype_name(t), " is not a stored element type");
  return k::ElemType::f32;
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    case DType::i32: return CUDA_R_32I;
    default: break;  // quantized weights are bf16 on the device
  }
  HERD_CHECK(false, "dtype ", dtype_name(t), " has no cuBLAS type");
  return CUDA_R_32F;
}

// The device kernels' name of a quantized weight type (all of herd's: kernels/quant-matmul.cuh).
k::QuantType quant_type(DType t) {
  switch (t) {
    case DType::q8_0: return k::QuantType::q8_0;
    case DType::q4_0: return k::QuantType::q4_0;
    case DType::q4_1: return k::QuantType::q4_1;
    case DType::q4_k: return k::QuantType::q4_k;
    case DType::q5_k: return k::QuantType::q5_k;
    case DType::q6_k: return k::QuantType::q6_k;
    case DType::fp8: return k::QuantType::fp8;
    case DType::int4: return k::QuantType::int4;
    default: break;
  }
  HERD_CHECK(false, "dtype ", dtype_name(t), " is not a quantized weight type");
  return k::QuantType::q8_0;
}

void check_dtype(const Tensor& t, DType want, const char* what) {
  HERD_CHECK(t.dtype == want, what, " must be ", dtype_name(want), ", is ", dtype_name(t.dtype));
}

const float* f32p(const Tensor& t) { return static_cast<const float*>(t.data()); }
float* f32p(Tensor& t) { return static_cast<float*>(t.data()); }
const int32_t* i32p(const Tensor& t) { return static_cast<const int32_t*>(t.data()); }

// A recorded step (Backend::end_capture), replayed on the stream it was recorded from.
class CudaGraph final : public StepGraph {
 public:
  CudaGraph(cudaGraphExec_t exec, cudaStream_t stream, int64_t n_nodes)
      : exec_(exec), stream_(stream), n_nodes_(n_nodes) {}
  ~CudaGraph() override { cudaGraphExecDestroy(exec_); }
  void replay() override { HERD_CUDA_CHECK(cudaGraphLaunch(exec_, stream_)); }
  int64_t n_ops() const override { return n_nodes_; }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
  int64_t n_nodes_;
};

// HERD_CUDA_FLASH / HERD_CUDA_GRAPHS / HERD_CUDA_SAMPLING: on (or unset) or off.
bool env_switch(const char* name) {
  const char* env = std::getenv(name);
  const std::string v = env != nullptr ? env : "on";
  HERD_REQUIRE(v == "on" || v == "off", name, "=", v, ": expected on or off");
  return v == "on";
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, bool kv_fp8, bool flash) : device_(device), kv_fp8_(kv_fp8) {
    int n_devices = 0;
    HERD_CUDA_CHECK(cudaGetDeviceCount(&n_devices));
    HERD_REQUIRE(device >= 0 && device < n_devices, "CUDA device ", device, " does not exist (", n_devices,
                 " visible)");
    HERD_CUDA_CHECK(cudaSetDevice(device));
    HERD_CUDA_CHECK(cudaDeviceGetAttribute(&n_sm_, cudaDevAttrMultiProcessorCount, device));
    cudaDeviceProp prop{};
    HERD_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    device_name_ = prop.name;
    cc_major_ = prop.major;
    flash_ = flash && env_switch("HERD_CUDA_FLASH");
    graphs_ = env_switch("HERD_CUDA_GRAPHS");
    device_sampling_ = env_switch("HERD_CUDA_SAMPLING");
    HERD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    HERD_CUBLAS_CHECK(cublasCreate(&cublas_));
    HERD_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    HERD_CUDA_CHECK(cudaMalloc(&cublas_workspace_, kCublasWorkspaceBytes));
    HERD_CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspaceBytes));
    // Default math mode: with CUBLAS_COMPUTE_32F, f32 products stay f32 (no silent TF32).
    // cuBLASLt shares cuBLAS's workspace: both run on the one stream, one call at a time.
    fp8_gemm_ = std::make_unique<Fp8Gemm>(prop.major * 10 + prop.minor >= 89, stream_, cublas_workspace_,
                                          kCublasWorkspaceBytes);
    sampler_ = std::make_unique<DeviceSampler>(stream_);
  }

  ~CudaBackend() override {
    // Destructors must not throw: wait for queued work, release, ignore errors.
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    fp8_gemm_.reset();
    sampler_.reset();
    if (cublas_ != nullptr) cublasDestroy(cublas_);
    if (cublas_workspace_ != nullptr) cudaFree(cublas_workspace_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda:" + std::to_string(device_) + " (" + device_name_ + ")"; }
  CudaPlace place() const { return {device_, stream_}; }

  size_t free_memory() const override {
    size_t free = 0, total = 0;
    HERD_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    return free;
  }

  // --- memory ----------------------------------------------------------------

  Tensor upload_weight(const TensorView& host) override {
    // Quantized weights stay in their blocks, which the kernels read directly; an act-ordered one
    // (GPTQ's col_perm) becomes BF16 in input order instead, and FP8 rows of one scale each (every
    // FP8 checkpoint's) become E4M3 codes with a scale per row (upload_fp8_rows).
    if (host.col_perm != nullptr) return upload_dequantized(host);
    if (host.dtype == DType::fp8)
      if (std::optional<Tensor> rows = upload_fp8_rows(host)) return *rows;
    Tensor t = alloc_uninit(host.dtype, host.shape);
    // Pageable source: the copy is staged by the driver; weights are uploaded once.
    HERD_CUDA_CHECK(cudaMemcpyAsync(t.data(), host.data, host.nbytes(), cudaMemcpyHostToDevice, stream_));
    HERD_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return t;
  }

  Tensor alloc(DType dtype, Shape shape) override {
    Tensor t = alloc_uninit(dtype, std::move(shape));
    // Zeroed like the CPU backend's, so a never-written cache row is 0, not garbage.
    HERD_CUDA_CHECK(cudaMemsetAsync(t.data(), 0, t.nbytes(), stream_));
    return t;
  }

  void write(Tensor& dst, const void* src, size_t nbytes) override {
    HERD_CHECK(nbytes <= dst.nbytes(), "write of ", nbytes, " bytes into a tensor of ", dst.nbytes());
    HERD_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src, nbytes, cudaMemcpyHostToDevice, stream_));
    HERD_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void copy_blocks(Tensor& t, const std::vector<std::pair<int32_t, int32_t>>& from_to) override {
    const size_t block_bytes = t.nbytes() / size_t(t.dim(0));
    auto* base = static_cast<uint8_t*>(t.data());
    // A handful of blocks per step at most (forked samples' partial blocks): plain async copies.
    for (auto [from, to] : from_to) {
      HERD_CHECK(from >= 0 && to >= 0 && from < t.dim(0) && to < t.dim(0), "block copy ", from, " -> ", to);
      HERD_CUDA_CHECK(cudaMemcpyAsync(base + size_t(to) * block_bytes, base + size_t(from) * block_bytes, block_bytes,
                                      cudaMemcpyDeviceToDevice, stream_));
    }
  }

  void read(const Tensor& src, void* dst, size_t nbytes) override {
    HERD_CHECK(nbytes <= src.nbytes(), "read of ", nbytes, " bytes from a tensor of ", src.nbytes());
    HERD_CUDA_CHECK(cudaMemcpyAsync(dst, src.data(), nbytes, cudaMemcpyDeviceToHost, stream_));
    HERD_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  // --- ops -------------------------------------------------------------------

  bool can_capture() const override { return graphs_; }

  bool begin_capture() override {
    if (!graphs_) return false;
    // Thread-local mode: another thread's (another rank's) stream work does not break the recording.
    HERD_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    return true;
  }

  std::unique_ptr<StepGraph> end_capture() override {
    cudaGraph_t graph = nullptr;
    // A recording that an op broke (an error, a forbidden call) ends with an error here: null.
    if (cudaStreamEndCapture(stream_, &graph) != cudaSuccess || graph == nullptr) {
      cudaGetLastError();
      if (graph != nullptr) cudaGraphDestroy(graph);
      return nullptr;
    }
    size_t n_nodes = 0;
    cudaGraphExec_t exec = nullptr;
    cudaError_t e = cudaGraphGetNodes(graph, nullptr, &n_nodes);
    if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    return std::make_unique<CudaGraph>(exec, stream_, int64_t(n_nodes));
  }

  uint64_t memory_epoch() const override { return epoch_; }

  void embed(const Tensor& table, const Tensor& ids, Tensor& out) override {
    const int64_t n_vocab = table.dim(0), n_embd = table.dim(1), n_tokens = ids.numel();
    check_dtype(ids, DType::i32, "embed ids");
    check_dtype(out, DType::f32, "embed output");
    HERD_CHECK(out.numel() == n_tokens * n_embd);
    if (table.dtype == DType::f8_e4m3) {
      HERD_CUDA_CHECK(k::fp8_rows_embed(table.data(), fp8_row_scales(table), n_vocab, n_embd, i32p(ids), f32p(out),
                                        n_tokens, stream_));
      return;
    }
    if (is_quantized(table.dtype)) {
      HERD_CUDA_CHECK(k::quant_embed(table.data(), quant_type(table.dtype), n_vocab, n_embd, i32p(ids), f32p(out),
                                     int(n_tokens), stream_));
      return;
    }
    // Ids are on the device: one out of range becomes a NaN row (see kernels/embed.cuh).
    HERD_CUDA_CHECK(k::embed(table.data(), elem_type(table.dtype, "embed table"), i32p(ids), f32p(out),
                             int(n_tokens), int(n_embd), n_vocab, stream_));
  }

  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override {
    const int64_t d = x.dim(-1), n = x.numel() / d;
    check_dtype(x, DType::f32, "rms_norm input");
    check_dtype(out, DType::f32, "rms_norm output");
    HERD_CHECK(w.numel() == d && out.numel() == x.numel());
    HERD_CUDA_CHECK(k::rmsnorm(f32p(x), w.data(), elem_type(w.dtype, "rms_norm weight"), f32p(out), int(n), int(d),
                               d, d, eps, stream_));
  }

  void add_rms_norm(Tensor& x, const Tensor& y, const Tensor& w, float eps, Tensor& out) override {
    const int64_t d = x.dim(-1), n = x.numel() / d;
    check_dtype(x, DType::f32, "add_rms_norm x");
    check_dtype(y, DType::f32, "add_rms_norm y");
    check_dtype(out, DType::f32, "add_rms_norm output");
    HERD_CHECK(w.numel() == d && y.numel() == x.numel() && out.numel() == x.numel(), "add_rms_norm: x ",
               shape_str(x.shape), ", y ", shape_str(y.shape), ", w ", shape_str(w.shape), ", out ",
               shape_str(out.shape));
    HERD_CHECK(out.data() != x.data(), "add_rms_norm: out must not be x's memory");
    HERD_REQUIRE(d <= k::kAddRmsnormMaxEmbd, "the CUDA add_rms_norm kernel supports rows of up to ",
                 k::kAddRmsnormMaxEmbd, " elements, not ", d);
    HERD_CUDA_CHECK(k::add_rmsnorm(f32p(x), f32p(y), w.data(), elem_type(w.dtype, "add_rms_norm weight"), f32p(out),
                                   int(n), int(d), d, d, d, eps, stream_));
  }

  void matmul(const Tensor& x, const Tensor& w, Tensor& out) override {
    const int64_t kdim = x.dim(-1), n = x.numel() / kdim, m = w.dim(0);
    check_dtype(x, DType::f32, "matmul input");
    check_dtype(out, DType::f32, "matmul output");
    HERD_CHECK(w.shape.size() == 2 && w.dim(1) == kdim, "matmul: x has ", kdim, " columns, w ", shape_str(w.shape));
    HERD_CHECK(out.numel() == n * m);
    if (n == 0) return;
    if (is_quantized(w.dtype)) return matmul_quantized(x, w, out);
    const MatmulOut part{w, out};
    if (gemv_fits(x, std::span(&part, 1))) return gemv(x, std::span(&part, 1));
    if (w.dtype == DType::f8_e4m3) return matmul_fp8_rows(x, w, out);
    gemm(x, w.dtype == DType::f32 ? x.data() : cast_input(x, w.dtype), w, out);
  }

  // x rounded to a 16-bit weight type, for the tensor cores (the tests' tolerance accounts for that
  // rounding; products and sums stay f32): a scratch buffer, valid until the next cast.
  const void* cast_input(const Tensor& x, DType weight_type) {
    void* buf = cast_scratch_.get(size_t(x.numel()) * 2, stream_);
    HERD_CUDA_CHECK(k::cast_f32(f32p(x), buf, elem_type(weight_type, "matmul weight"), x.numel(), stream_));
    return buf;
  }

  // out[n, m] = xs[n, k] . w[m, k]^T through cuBLAS, xs in w's type (x itself for f32 weights).
  void gemm(const Tensor& x, const void* xs, const Tensor& w, Tensor& out) {
    const int64_t kdim = x.dim(-1), n = x.numel() / kdim, m = w.dim(0);
    // Row-major out[n, m] = x[n, k] . w[m, k]^T is, in cuBLAS's column-major view,
    // out^T[m, n] = (w viewed as [k, m])^T . (x viewed as [k, n]): op(A) = T on w, op(B) = N on x.
    const float alpha = 1.f, beta = 0.f;
    HERD_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(m), int(n), int(kdim), &alpha, w.data(),
                                   cuda_type(w.dtype), int(kdim), xs, cuda_type(w.dtype), int(kdim), &beta,
                                   out.data(), CUDA_R_32F, int(m), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }

  // A quantized weight: a few tokens read its blocks once in a GEMV that widens them in registers;
  // more are multiplied on the tensor cores after widening slabs of its rows to BF16.
  // q, k and v (or gate and up) of a decode step in one launch of the GEMV; otherwise one product each.
  void matmul_shared(const Tensor& x, std::span<const MatmulOut> parts) override {
    if (gemv_fits(x, parts)) {
      const int64_t kdim = x.dim(-1), n = x.numel() / kdim;
      for (const MatmulOut& p : parts) {
        HERD_CHECK(p.w.shape.size() == 2 && p.w.dim(1) == kdim, "matmul: x has ", kdim, " columns, w ",
                   shape_str(p.w.shape));
        HERD_CHECK(p.out.numel() == n * p.w.dim(0));
        check_dtype(p.out, DType::f32, "matmul output");
      }
      return gemv(x, parts);
    }
    // 16-bit weights of one type share one cast of x: one pass instead of one per product.
    const DType t = parts.empty() ? DType::f32 : parts[0].w.dtype;
    const bool one_cast = (t == DType::bf16 || t == DType::f16) &&
                          std::all_of(parts.begin(), parts.end(), [&](const MatmulOut& p) {
                            return p.w.dtype == t && p.w.shape.size() == 2 && p.w.dim(1) == x.dim(-1) &&
                                   p.out.dtype == DType::f32 && p.out.numel() == x.numel() / x.dim(-1) * p.w.dim(0);
                          });
    if (!one_cast || x.numel() == 0) {
      for (const MatmulOut& p : parts) matmul(x, p.w, p.out);
      return;
    }
    check_dtype(x, DType::f32, "matmul input");
    const void* xs = cast_input(x, t);
    for (const MatmulOut& p : parts) gemm(x, xs, p.w, p.out);
  }

  // A decode step's gate and up products and SiLU in one GEMV launch; otherwise as every backend.
  void swiglu(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, Tensor& gate, Tensor& up) override {
    const MatmulOut parts[] = {{w_gate, gate}, {w_up, up}};
    if (!gemv_fits(x, parts) || w_gate.dim(0) != w_up.dim(0)) return Backend::swiglu(x, w_gate, w_up, gate, up);
    const int64_t kdim = x.dim(-1), n = x.numel() / kdim;
    check_dtype(gate, DType::f32, "swiglu output");
    HERD_CHECK(gate.numel() == n * w_gate.dim(0), "swiglu: gate ", shape_str(gate.shape), " for ", n, " x ",
               w_gate.dim(0));
    HERD_CUDA_CHECK(k::dense_gemv_swiglu(gemv_part(w_gate, gate), gemv_part(w_up, up),
                                         elem_type(w_gate.dtype, "matmul weight"), kdim, f32p(x), int(n), stream_));
  }

  // Whether the parts' products go to the GEMV: a few tokens (decode), 16-bit weights or FP8 rows of
  // one type, rows of whole 16-byte chunks.
  static bool gemv_fits(const Tensor& x, std::span<const MatmulOut> parts) {
    const int64_t kdim = x.dim(-1), n = kdim > 0 ? x.numel() / kdim : 0;
    if (n < 1 || n > k::kDenseGemvMaxTokens || kdim % 8 != 0 || x.dtype != DType::f32 || parts.empty() ||
        parts.size() > size_t(k::kDenseGemvMaxParts))
      return false;
    const DType t = parts[0].w.dtype;
    if (!(t == DType::bf16 || t == DType::f16 || (t == DType::f8_e4m3 && kdim % 16 == 0))) return false;
    return std::all_of(parts.begin(), parts.end(), [&](const MatmulOut& p) {
      return p.w.dtype == t && p.w.shape.size() == 2 && p.w.dim(1) == kdim;
    });
  }

  static k::GemvPart gemv_part(const Tensor& w, Tensor& out) {
    return {w.data(), f32p(out), w.dim(0), w.dtype == DType::f8_e4m3 ? fp8_row_scales(w) : nullptr};
  }

  void gemv(const Tensor& x, std::span<const MatmulOut> parts) {
    const int64_t kdim = x.dim(-1), n = x.numel() / kdim;
    k::GemvPart gp[k::kDenseGemvMaxParts];
    for (size_t i = 0; i < parts.size(); ++i) gp[i] = gemv_part(parts[i].w, parts[i].out);
    HERD_CUDA_CHECK(k::dense_gemv(gp, int(parts.size()), elem_type(parts[0].w.dtype, "matmul weight"), kdim, f32p(x),
                                  int(n), stream_));
  }

  // Many tokens against FP8 rows: x quantized per token and multiplied on FP8 tensor cores; where
  // cuBLASLt has no kernel (an older GPU, unaligned sizes), the rows widened to BF16 a slab at a time.
  void matmul_fp8_rows(const Tensor& x, const Tensor& w, Tensor& out) {
    const int64_t kdim = x.dim(-1), n = x.numel() / kdim, m = w.dim(0);
    const size_t codes_bytes = fp8_codes_bytes(n * kdim);
    auto* xq = static_cast<uint8_t*>(fp8_act_scratch_.get(codes_bytes + size_t(n) * sizeof(float), stream_));
    auto* x_scales = reinterpret_cast<float*>(xq + codes_bytes);
    HERD_CUDA_CHECK(k::fp8_rows_quantize(f32p(x), n, kdim, kdim, xq, x_scales, stream_));
    if (fp8_gemm_->run(w.data(), fp8_row_scales(w), m, xq, x_scales, n, kdim, f32p(out))) return;
    void* xb = cast_scratch_.get(size_t(n * kdim) * 2, stream_);
    HERD_CUDA_CHECK(k::cast_f32(f32p(x), xb, k::ElemType::bf16, n * kdim, stream_));
    gemm_widened_slabs(xb, n, kdim, m, f32p(out), [&](int64_t r0, int64_t rows, void* wb) {
      HERD_CUDA_CHECK(k::fp8_rows_to_bf16(static_cast<const uint8_t*>(w.data()) + size_t(r0 * kdim),
                                          fp8_row_scales(w) + r0, rows, kdim, wb, stream_));
    });
  }

  // out[n, m] = xb . w^T with w widened to BF16 by widen(r0, rows, slab) a slab of rows at a time, so
  // that the largest weight (an LM head) never widens whole. xb: [n, kdim] bf16.
  template <typename Widen>
  void gemm_widened_slabs(const void* xb, int64_t n, int64_t kdim, int64_t m, float* out, Widen&& widen) {
    const int64_t slab = std::min<int64_t>(m, std::max<int64_t>(64, (int64_t(256) << 20) / (kdim * 2)));
    void* wb = dequant_scratch_.get(size_t(slab * kdim) * 2, stream_);
    const float alpha = 1.f, beta = 0.f;
    for (int64_t r0 = 0; r0 < m; r0 += slab) {
      const int64_t rows = std::min(slab, m - r0);
      widen(r0, rows, wb);
      // out[:, r0 .. r0 + rows) = x . slab^T, as in matmul (column-major: ldc = m, offset r0).
      HERD_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), int(n), int(kdim), &alpha, wb,
                                     CUDA_R_16BF, int(kdim), xb, CUDA_R_16BF, int(kdim), &beta, out + r0, CUDA_R_32F,
                                     int(m), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
  }

  // FP8 rows on the device: E4M3 codes [rows, cols], padded to 16 bytes, then the rows' f32 scales.
  static size_t fp8_codes_bytes(int64_t n_codes) { return (size_t(n_codes) + 15) / 16 * 16; }
  static const float* fp8_row_scales(const Tensor& w) {
    return reinterpret_cast<const float*>(static_cast<const uint8_t*>(w.data()) + fp8_codes_bytes(w.numel()));
  }

  // herd's FP8 blocks (common/quant.h) as FP8 rows, when every row's blocks share one scale; nullopt
  // otherwise (the blocks stay as they are).
  std::optional<Tensor> upload_fp8_rows(const TensorView& host) {
    const int64_t cols = host.shape.back(), rows = host.numel() / cols, blocks = cols / 32;
    const auto* b = static_cast<const Fp8Block*>(host.data);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 1; i < blocks; ++i)
        if (std::memcmp(&b[r * blocks + i].d, &b[r * blocks].d, sizeof(float)) != 0) return std::nullopt;
    const size_t codes_bytes = fp8_codes_bytes(rows * cols);
    std::vector<uint8_t> staged(codes_bytes + size_t(rows) * sizeof(float), 0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < blocks; ++i) std::memcpy(&staged[size_t((r * blocks + i) * 32)], b[r * blocks + i].q, 32);
      std::memcpy(&staged[codes_bytes + size_t(r) * sizeof(float)], &b[r * blocks].d, sizeof(float));
    }
    Tensor t = alloc_uninit(DType::f8_e4m3, {int64_t(staged.size())});
    HERD_CUDA_CHECK(cudaMemcpyAsync(t.data(), staged.data(), staged.size(), cudaMemcpyHostToDevice, stream_));
    HERD_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return view_as(t, host.shape);
  }

  void matmul_quantized(const Tensor& x, const Tensor& w, Tensor& out) {
    const int64_t kdim = x.dim(-1), n = x.numel() / kdim, m = w.dim(0);
    const k::QuantType qt = quant_type(w.dtype);
    if (n <= k::kQuantGemvMaxTokens) {
      HERD_CUDA_CHECK(k::quant_gemv(w.data(), qt, m, kdim, f32p(x), f32p(out), int(n), stream_));
      return;
    }
    void* xb = cast_scratch_.get(size_t(n * kdim) * 2, stream_);
    HERD_CUDA_CHECK(k::cast_f32(f32p(x), xb, k::ElemType::bf16, n * kdim, stream_));
    const size_t row_bytes = dtype_nbytes(w.dtype, kdim);
    gemm_widened_slabs(xb, n, kdim, m, f32p(out), [&](int64_t r0, int64_t rows, void* wb) {
      HERD_CUDA_CHECK(k::quant_dequantize(static_cast<const uint8_t*>(w.data()) + size_t(r0) * row_bytes, qt, rows,
                                          kdim, wb, stream_));
    });
  }

  // bf16 halves the largest buffer at long contexts, FP8 (when asked) quarters it; scores and sums
  // stay f32 in the kernels.
  DType kv_dtype() const override { return kv_fp8_ ? DType::f8_e4m3 : DType::bf16; }

  void rope_kv_write(Tensor& q, Tensor& kt, const Tensor& v, const Tensor& pos, const Tensor& inv_freq,
                     const Tensor& slot_mapping, Tensor& k_cache, Tensor& v_cache, KvScales scales = {}) override {
    const int64_t n_tokens = slot_mapping.numel(), head_dim = q.dim(-1), n_head = q.dim(-2);
    check_dtype(q, DType::f32, "rope_kv_write q");
    check_dtype(kt, DType::f32, "rope_kv_write k");
    check_dtype(v, DType::f32, "rope_kv_write v");
    check_dtype(pos, DType::i32, "rope_kv_write positions");
    check_dtype(inv_freq, DType::f32, "rope_kv_write inv_freq");
    check_dtype(slot_mapping, DType::i32, "rope_kv_write slot_mapping");
    const k::ElemType ct = cache_type(k_cache, v_cache);
    const int64_t n_blocks = k_cache.dim(0), n_head_kv = k_cache.dim(1), block_size = k_cache.dim(2);
    HERD_CHECK(q.numel() == n_tokens * n_head * head_dim && pos.numel() == n_tokens &&
                   inv_freq.numel() == head_dim / 2 && k_cache.dim(3) == head_dim,
               "rope_kv_write: q ", shape_str(q.shape), ", ", pos.numel(), " positions, ", inv_freq.numel(),
               " frequencies for ", n_tokens, " slots, cache ", shape_str(k_cache.shape));
    HERD_CHECK(kt.numel() == n_tokens * n_head_kv * head_dim && v.numel() == kt.numel(), "rope_kv_write: k ",
               shape_str(kt.shape), ", v ", shape_str(v.shape), " for ", n_tokens, " slots into a cache ",
               shape_str(k_cache.shape));
    // Slots are on the device: -1 and any slot outside the cache are skipped (kernels/rope-kv-write.cuh).
    const int64_t kv_row = n_head_kv * head_dim;
    const KvScales s = fp8_scales(ct, scales);
    HERD_CUDA_CHECK(k::rope_kv_write(f32p(q), f32p(kt), f32p(v), i32p(pos), f32p(inv_freq), i32p(slot_mapping),
                                     k_cache.data(), v_cache.data(), ct, s.k, s.v, int(n_tokens), int(n_head), int(n_head_kv),
                                     int(head_dim), int(block_size), int(n_blocks), n_head * head_dim, kv_row, kv_row,
                                     stream_));
  }

  void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& query_start_loc,
                 const Tensor& seq_lens, const Tensor& block_table, Tensor& out, KvScales scales = {}) override {
    const int64_t head_dim = q.dim(-1), n_head = q.dim(-2), n_tokens = q.numel() / (n_head * head_dim);
    const int64_t n_seqs = seq_lens.numel(), max_blocks = block_table.dim(-1);
    check_dtype(q, DType::f32, "attention q");
    check_dtype(out, DType::f32, "attention output");
    check_dtype(query_start_loc, DType::i32, "attention query_start_loc");
    check_dtype(seq_lens, DType::i32, "attention seq_lens");
    check_dtype(block_table, DType::i32, "attention block_table");
    const k::ElemType ct = cache_type(k_cache, v_cache);
    HERD_REQUIRE(ct == k::ElemType::bf16 || ct == k::ElemType::fp8_e4m3,
                 "the CUDA attention kernel reads a bf16 or FP8 cache, not ", dtype_name(k_cache.dtype));
    const int64_t n_blocks = k_cache.dim(0), n_head_kv = k_cache.dim(1), block_size = k_cache.dim(2);
    HERD_CHECK(k_cache.dim(3) == head_dim && n_head % n_head_kv == 0, "attention: q ", shape_str(q.shape),
               " vs cache ", shape_str(k_cache.shape));
    HERD_CHECK(out.numel() == q.numel(), "attention: out ", shape_str(out.shape), " for q ", shape_str(q.shape));
    HERD_CHECK(query_start_loc.numel() == n_seqs + 1 && block_table.numel() == n_seqs * max_blocks,
               "attention: query_start_loc ", shape_str(query_start_loc.shape), ", seq_lens ",
               shape_str(seq_lens.shape), ", block_table ", shape_str(block_table.shape), " disagree on n_seqs");
    HERD_REQUIRE(head_dim == 32 || head_dim == 64 || head_dim == 128,
                 "the CUDA attention kernel supports head_dim 32, 64 and 128, not ", head_dim);
    HERD_REQUIRE(block_size > 0 && (block_size & (block_size - 1)) == 0,
                 "the CUDA attention kernel needs a power-of-two block size, not ", block_size);
    if (n_tokens == 0 || n_seqs == 0) return;
    // Steps with a prefill chunk (more tokens than sequences) run on tensor cores; decode steps stay
    // on the f32 kernel, which is bound by K/V reads, not arithmetic. The split count comes from
    // sizes only: reading seq_lens back would stall the stream.
    const bool flash = flash_ && n_tokens > n_seqs && k::flash_attention_supported(cc_major_, int(head_dim));
    const auto splits_for = flash ? k::flash_attention_n_splits : k::paged_attention_n_splits;
    const int n_splits = splits_for(int(n_tokens), int(n_seqs), int(n_head), int(n_head_kv), n_sm_);
    const size_t ws_bytes = k::attention_workspace_bytes(n_splits, int(n_tokens), int(n_head), int(head_dim));
    float* ws = ws_bytes > 0 ? static_cast<float*>(attn_scratch_.get(ws_bytes, stream_)) : nullptr;
    const KvScales s = fp8_scales(ct, scales);
    const float scale = s.k / std::sqrt(float(head_dim));
    const auto kernel = flash ? k::flash_attention : k::paged_attention;
    HERD_CUDA_CHECK(kernel(f32p(q), k_cache.data(), v_cache.data(), i32p(query_start_loc), i32p(seq_lens),
                           i32p(block_table), f32p(out), int(n_tokens), int(n_seqs), int(n_head), int(n_head_kv),
                           int(head_dim), int(block_size), int(n_blocks), int(max_blocks), n_head * head_dim,
                           n_head * head_dim, ct, scale, s.v, n_splits, ws, stream_));
  }

  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    check_dtype(gate, DType::f32, "silu_mul gate");
    check_dtype(up, DType::f32, "silu_mul up");
    check_dtype(out, DType::f32, "silu_mul output");
    HERD_CHECK(up.numel() == gate.numel() && out.numel() == gate.numel());
    // Flattened: as one row when it fits, else rows of the last dimension.
    const int64_t n = gate.numel();
    const int64_t n_ff = gate.shape.empty() ? 1 : gate.dim(-1), n_rows = n / std::max<int64_t>(1, n_ff);
    HERD_CUDA_CHECK(k::silu_mul(f32p(gate), f32p(up), f32p(out), int(n_rows), int(n_ff), n_ff, n_ff, n_ff, stream_));
  }

  void argmax(const Tensor& x, Tensor& out) override {
    check_dtype(x, DType::f32, "argmax input");
    check_dtype(out, DType::i32, "argmax output");
    const int64_t n = x.dim(-1), n_rows = n > 0 ? x.numel() / n : 0;
    HERD_CHECK(n > 0 && out.numel() == n_rows, "argmax: x ", shape_str(x.shape), " into out ", shape_str(out.shape));
    HERD_CUDA_CHECK(k::argmax(f32p(x), static_cast<int32_t*>(out.data()), int(n_rows), int(n), n, stream_));
  }

  bool samples_on_device() const override { return device_sampling_; }

  std::vector<SampledToken> sample(const Tensor& logits, std::span<const SampleSpec> specs) override {
    check_dtype(logits, DType::f32, "sampled logits");
    HERD_CHECK(logits.shape.size() == 2, "sampled logits are [n_rows, n_vocab], not ", shape_str(logits.shape));
    return sampler_->run(f32p(logits), logits.dim(0), logits.dim(1), specs);
  }

 private:
  // No quantized kernels yet: a quantized weight becomes bf16 on the device, converted on the
  // host a slab of rows at a time so that the whole tensor is never expanded in host memory.
  Tensor upload_dequantized(const TensorView& host) {
    const int64_t cols = host.shape.back(), rows = host.numel() / cols;
    const size_t row_bytes = dtype_nbytes(host.dtype, cols);
    Tensor t = alloc_uninit(DType::bf16, host.shape);
    const int64_t slab = std::max<int64_t>(1, (int64_t(8) << 20) / (cols * 2));  // ~8 MiB of bf16
    std::vector<float> row(static_cast<size_t>(cols));
    std::vector<uint16_t> staged(static_cast<size_t>(std::min(slab, rows) * cols));
    for (int64_t r0 = 0; r0 < rows; r0 += slab) {
      const int64_t n = std::min(slab, rows - r0);
      for (int64_t r = 0; r < n; ++r) {
        dequantize_row(host.dtype, static_cast<const uint8_t*>(host.data) + size_t(r0 + r) * row_bytes, row.data(), cols);
        // An act-ordered weight's stored column i is input column col_perm[i]: put it back there.
        for (int64_t i = 0; i < cols; ++i)
          staged[size_t(r * cols + (host.col_perm ? host.col_perm[i] : i))] = f32_to_bf16(row[size_t(i)]);
      }
      HERD_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint16_t*>(t.data()) + r0 * cols, staged.data(), size_t(n * cols) * 2,
                                      cudaMemcpyHostToDevice, stream_));
      HERD_CUDA_CHECK(cudaStreamSynchronize(stream_));  // staged is reused for the next slab
    }
    return t;
  }

  Tensor alloc_uninit(DType dtype, Shape shape) {
    const size_t n = dtype_nbytes(dtype, shape_numel(shape));
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, std::max<size_t>(n, 256));
    // Not the user's input: an environment failure (the model or the KV budget does not fit).
    if (e != cudaSuccess) {
      cudaGetLastError();  // reset the (non-sticky) error, or the next check would report it again
      throw Error(ErrorKind::internal, str_cat("out of device memory allocating ", n, " bytes for ", shape_str(shape),
                                               " on ", name(), ": ", cudaGetErrorString(e)));
    }
    return Tensor{dtype, std::move(shape), std::shared_ptr<void>(p, [](void* q) { cudaFree(q); })};
  }

  // The scales an FP8 cache uses; 1 for the others (the kernels then divide and multiply by 1).
  static KvScales fp8_scales(k::ElemType ct, KvScales scales) {
    if (ct != k::ElemType::fp8_e4m3) return {};
    HERD_CHECK(scales.k > 0.f && scales.v > 0.f && std::isfinite(scales.k) && std::isfinite(scales.v),
               "FP8 KV scales must be positive and finite, not ", scales.k, " and ", scales.v);
    return scales;
  }

  static k::ElemType cache_type(const Tensor& k_cache, const Tensor& v_cache) {
    HERD_CHECK(k_cache.dtype == v_cache.dtype && k_cache.shape == v_cache.shape, "K and V caches differ: ",
               shape_str(k_cache.shape), " vs ", shape_str(v_cache.shape));
    HERD_REQUIRE(k_cache.dtype == DType::f32 || k_cache.dtype == DType::bf16 || k_cache.dtype == DType::f8_e4m3,
                 "KV caches are f32, bf16 or FP8, not ", dtype_name(k_cache.dtype));
    HERD_CHECK(k_cache.shape.size() == 4, "a KV cache is [n_blocks, n_head_kv, block_size, head_dim], not ",
               shape_str(k_cache.shape));
    return k_cache.dtype == DType::f8_e4m3 ? k::ElemType::fp8_e4m3 : elem_type(k_cache.dtype, "KV cache");
  }

  int device_ = 0;
  bool kv_fp8_ = false;
  bool flash_ = false;   // prefill attention on tensor cores (kernels/flash-attention.cuh); HERD_CUDA_FLASH
  bool graphs_ = false;  // steps may be recorded as CUDA graphs; HERD_CUDA_GRAPHS
  bool device_sampling_ = false;  // tokens are picked here (sample()); HERD_CUDA_SAMPLING
  uint64_t epoch_ = 0;   // memory_epoch(): bumped by the scratch buffers below
  int n_sm_ = 1;
  int cc_major_ = 0;  // compute capability
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  void* cublas_workspace_ = nullptr;
  Scratch cast_scratch_{&epoch_}, attn_scratch_{&epoch_};
  Scratch dequant_scratch_{&epoch_};  // a slab of a quantized weight's rows as BF16 (gemm_widened_slabs)
  Scratch fp8_act_scratch_{&epoch_};  // activations quantized per token (matmul_fp8_rows)
  std::unique_ptr<Fp8Gemm> fp8_gemm_;
  std::unique_ptr<DeviceSampler> sampler_;
};

}  // namespace

bool cuda_device_available() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // no driver / no device: clear it so it does not leak into later checks
    return false;
  }
  return n > 0;
}

std::unique_ptr<Backend> make_cuda_backend(int device, bool kv_fp8, bool flash_attention) {
  return std::make_unique<CudaBackend>(device, kv_fp8, flash_attention);
}

bool is_cuda_backend(const Backend& backend) { return dynamic_cast<const CudaBackend*>(&backend) != nullptr; }

CudaPlace cuda_place(Backend& backend) {
  const auto* cuda = dynamic_cast<const CudaBackend*>(&backend);
  HERD_CHECK(cuda != nullptr, backend.name(), " is not a CUDA backend");
  return cuda->place();
}

}  // namespace herd
