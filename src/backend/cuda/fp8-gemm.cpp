#include "backend/cuda/fp8-gemm.h"

#include <cublas_v2.h>

#include "common/check.h"

namespace herd {
namespace {

// cuBLASLt's descriptors for one call, released whatever happens.
struct Descriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~Descriptors() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

template <typename T>
bool set(cublasLtMatmulDesc_t op, cublasLtMatmulDescAttributes_t attr, const T& v) {
  return cublasLtMatmulDescSetAttribute(op, attr, &v, sizeof(v)) == CUBLAS_STATUS_SUCCESS;
}

}  // namespace

Fp8Gemm::Fp8Gemm(bool fp8_tensor_cores, cudaStream_t stream, void* workspace, size_t workspace_bytes)
    : stream_(stream), workspace_(workspace), workspace_bytes_(workspace_bytes) {
  usable_ = fp8_tensor_cores && cublasLtCreate(&lt_) == CUBLAS_STATUS_SUCCESS;
}

Fp8Gemm::~Fp8Gemm() {
  if (lt_ != nullptr) cublasLtDestroy(lt_);
}

bool Fp8Gemm::run(const void* w_codes, const float* w_scales, int64_t m, const void* x_codes, const float* x_scales,
                  int64_t n, int64_t k, float* out) {
  if (!usable_) return false;
  // Row-major out[n, m] = x . w^T is column-major out^T[m, n] = (w as [k, m])^T (x as [k, n]): A = w
  // transposed, B = x, both K-major, the layout FP8 kernels require.
  Descriptors s;
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  const int32_t outer = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
  if (cublasLtMatmulDescCreate(&s.op, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS ||
      !set(s.op, CUBLASLT_MATMUL_DESC_TRANSA, trans_a) || !set(s.op, CUBLASLT_MATMUL_DESC_TRANSB, trans_b) ||
      !set(s.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, outer) || !set(s.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, outer) ||
      !set(s.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, w_scales) ||
      !set(s.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, x_scales))
    return false;
  if (cublasLtMatrixLayoutCreate(&s.a, CUDA_R_8F_E4M3, uint64_t(k), uint64_t(m), k) != CUBLAS_STATUS_SUCCESS ||
      cublasLtMatrixLayoutCreate(&s.b, CUDA_R_8F_E4M3, uint64_t(k), uint64_t(n), k) != CUBLAS_STATUS_SUCCESS ||
      cublasLtMatrixLayoutCreate(&s.d, CUDA_R_32F, uint64_t(m), uint64_t(n), m) != CUBLAS_STATUS_SUCCESS ||
      cublasLtMatmulPreferenceCreate(&s.pref) != CUBLAS_STATUS_SUCCESS)
    return false;
  const uint64_t ws = workspace_bytes_;
  if (cublasLtMatmulPreferenceSetAttribute(s.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)) !=
      CUBLAS_STATUS_SUCCESS)
    return false;
  cublasLtMatmulHeuristicResult_t best{};
  int found = 0;
  if (cublasLtMatmulAlgoGetHeuristic(lt_, s.op, s.a, s.b, s.d, s.d, s.pref, 1, &best, &found) !=
          CUBLAS_STATUS_SUCCESS ||
      found == 0)
    return false;
  const float alpha = 1.f, beta = 0.f;
  const cublasStatus_t st = cublasLtMatmul(lt_, s.op, &alpha, w_codes, s.a, x_codes, s.b, &beta, out, s.d, out, s.d,
                                           &best.algo, workspace_, workspace_bytes_, stream_);
  HERD_CHECK(st == CUBLAS_STATUS_SUCCESS, "cublasLtMatmul (FP8): ", cublasGetStatusName(st));
  return true;
}

}  // namespace herd
