#include "kernels/dense-gemv.cuh"

#include "kernels/dense-gemv-kernel.cuh"

namespace herd::kernels {
namespace {

using namespace gemv;

// The plain launch: one warp per row of every part.
template <typename TW, int NT>
struct Gemv {
  static cudaError_t run(const Parts& parts, int64_t cols, const float* x, cudaStream_t stream) {
    dense_gemv_kernel<TW, NT><<<unsigned((parts.total_rows + kWarps - 1) / kWarps), kThreads, 0, stream>>>(parts, cols,
                                                                                                         x);
    HERD_LAUNCH_CHECK();
  }
};

// The SwiGLU launch: parts.p[0] is gate, parts.p[1] up, one warp per row of both.
template <typename TW, int NT>
struct Swiglu {
  static cudaError_t run(const Parts& parts, int64_t cols, const float* x, cudaStream_t stream) {
    swiglu_gemv_kernel<TW, NT><<<unsigned((parts.p[0].rows + kWarps - 1) / kWarps), kThreads, 0, stream>>>(
        parts.p[0], parts.p[1], cols, x);
    HERD_LAUNCH_CHECK();
  }
};

// Launch<TW, n_tokens>::run for the run-time token count.
template <template <typename, int> class Launch, typename TW>
cudaError_t by_tokens(const Parts& parts, int64_t cols, const float* x, int n_tokens, cudaStream_t stream) {
  static_assert(kDenseGemvMaxTokens == 8, "one instantiation per token count");
  switch (n_tokens) {
    case 1: return Launch<TW, 1>::run(parts, cols, x, stream);
    case 2: return Launch<TW, 2>::run(parts, cols, x, stream);
    case 3: return Launch<TW, 3>::run(parts, cols, x, stream);
    case 4: return Launch<TW, 4>::run(parts, cols, x, stream);
    case 5: return Launch<TW, 5>::run(parts, cols, x, stream);
    case 6: return Launch<TW, 6>::run(parts, cols, x, stream);
    case 7: return Launch<TW, 7>::run(parts, cols, x, stream);
    case 8: return Launch<TW, 8>::run(parts, cols, x, stream);
    default: return cudaErrorInvalidValue;
  }
}

// ... and for the run-time weight type.
template <template <typename, int> class Launch>
cudaError_t dispatch(const Parts& parts, ElemType wtype, int64_t cols, const float* x, int n_tokens,
                     cudaStream_t stream) {
  switch (wtype) {
    case ElemType::bf16: return by_tokens<Launch, __nv_bfloat16>(parts, cols, x, n_tokens, stream);
    case ElemType::f16: return by_tokens<Launch, __half>(parts, cols, x, n_tokens, stream);
    case ElemType::fp8_e4m3: return by_tokens<Launch, __nv_fp8_e4m3>(parts, cols, x, n_tokens, stream);
    default: return cudaErrorInvalidValue;
  }
}

// The launch's parts gathered and checked: false when the call is malformed.
bool make_parts(const GemvPart* parts, int n_parts, ElemType wtype, int64_t cols, const float* x, int n_tokens,
                Parts* p) {
  const bool fp8 = wtype == ElemType::fp8_e4m3;
  if (n_parts < 1 || n_parts > kDenseGemvMaxParts || cols <= 0 || cols % (fp8 ? 16 : 8) != 0 || n_tokens < 0 ||
      n_tokens > kDenseGemvMaxTokens || !aligned16(x))
    return false;
  *p = Parts{};
  p->n = n_parts;
  int64_t total = 0;
  for (int i = 0; i < n_parts; ++i) {
    if (parts[i].rows < 0 || !aligned16(parts[i].w) || fp8 != (parts[i].row_scale != nullptr)) return false;
    p->p[i] = parts[i];
    p->row_end[i] = total += parts[i].rows;
  }
  p->total_rows = total;
  return total <= int64_t(kWarps) * 0x7fffffff;
}

}  // namespace

cudaError_t dense_gemv(const GemvPart* parts, int n_parts, ElemType wtype, int64_t cols, const float* x, int n_tokens,
                       cudaStream_t stream) {
  Parts p;
  if (!make_parts(parts, n_parts, wtype, cols, x, n_tokens, &p)) return cudaErrorInvalidValue;
  if (p.total_rows == 0 || n_tokens == 0) return cudaSuccess;
  return dispatch<Gemv>(p, wtype, cols, x, n_tokens, stream);
}

cudaError_t dense_gemv_swiglu(const GemvPart& gate, const GemvPart& up, ElemType wtype, int64_t cols, const float* x,
                              int n_tokens, cudaStream_t stream) {
  const GemvPart both[] = {gate, up};
  Parts p;
  if (gate.rows != up.rows || !make_parts(both, 2, wtype, cols, x, n_tokens, &p)) return cudaErrorInvalidValue;
  if (gate.rows == 0 || n_tokens == 0) return cudaSuccess;
  return dispatch<Swiglu>(p, wtype, cols, x, n_tokens, stream);
}

}  // namespace herd::kernels
