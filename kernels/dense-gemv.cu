#include "kernels/dense-gemv.cuh"

#include "kernels/dense-gemv-kernel.cuh"

namespace herd::kernels {
namespace {

using namespace gemv;

template <typename TW, int NT>
cudaError_t launch(const Parts& parts, int64_t cols, const float* x, cudaStream_t stream) {
  dense_gemv_kernel<TW, NT><<<unsigned((parts.total_rows + kWarps - 1) / kWarps), kThreads, 0, stream>>>(parts, cols, x);
  HERD_LAUNCH_CHECK();
}

template <typename TW>
cudaError_t launch_tokens(const Parts& parts, int64_t cols, const float* x, int n_tokens, cudaStream_t stream) {
  static_assert(kDenseGemvMaxTokens == 8, "one instantiation per token count");
  switch (n_tokens) {
    case 1: return launch<TW, 1>(parts, cols, x, stream);
    case 2: return launch<TW, 2>(parts, cols, x, stream);
    case 3: return launch<TW, 3>(parts, cols, x, stream);
    case 4: return launch<TW, 4>(parts, cols, x, stream);
    case 5: return launch<TW, 5>(parts, cols, x, stream);
    case 6: return launch<TW, 6>(parts, cols, x, stream);
    case 7: return launch<TW, 7>(parts, cols, x, stream);
    case 8: return launch<TW, 8>(parts, cols, x, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

cudaError_t dense_gemv(const GemvPart* parts, int n_parts, ElemType wtype, int64_t cols, const float* x, int n_tokens,
                       cudaStream_t stream) {
  const bool fp8 = wtype == ElemType::fp8_e4m3;
  if (n_parts < 1 || n_parts > kDenseGemvMaxParts || cols <= 0 || cols % (fp8 ? 16 : 8) != 0 || n_tokens < 0 ||
      n_tokens > kDenseGemvMaxTokens || !aligned16(x))
    return cudaErrorInvalidValue;
  Parts p{};
  p.n = n_parts;
  int64_t total = 0;
  for (int i = 0; i < n_parts; ++i) {
    if (parts[i].rows < 0 || !aligned16(parts[i].w) || fp8 != (parts[i].row_scale != nullptr))
      return cudaErrorInvalidValue;
    p.p[i] = parts[i];
    p.row_end[i] = total += parts[i].rows;
  }
  p.total_rows = total;
  if (total == 0 || n_tokens == 0) return cudaSuccess;
  if (total > int64_t(kWarps) * 0x7fffffff) return cudaErrorInvalidValue;
  switch (wtype) {
    case ElemType::bf16: return launch_tokens<__nv_bfloat16>(p, cols, x, n_tokens, stream);
    case ElemType::f16: return launch_tokens<__half>(p, cols, x, n_tokens, stream);
    case ElemType::fp8_e4m3: return launch_tokens<__nv_fp8_e4m3>(p, cols, x, n_tokens, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace herd::kernels
