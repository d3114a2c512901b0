#include "kernels/quant-matmul.cuh"

#include <cmath>

#include "kernels/quant-matmul-kernel.cuh"

namespace herd::kernels {
namespace {

using namespace quant;

// Runs LAUNCH<T>(args...) for the run-time type t.
#define HERD_QUANT_DISPATCH(t, LAUNCH, ...)                                   \
  switch (t) {                                                                \
    case QuantType::q8_0: return LAUNCH<QuantType::q8_0>(__VA_ARGS__);        \
    case QuantType::q4_0: return LAUNCH<QuantType::q4_0>(__VA_ARGS__);        \
    case QuantType::q4_1: return LAUNCH<QuantType::q4_1>(__VA_ARGS__);        \
    case QuantType::q4_k: return LAUNCH<QuantType::q4_k>(__VA_ARGS__);        \
    case QuantType::q5_k: return LAUNCH<QuantType::q5_k>(__VA_ARGS__);        \
    case QuantType::q6_k: return LAUNCH<QuantType::q6_k>(__VA_ARGS__);        \
    case QuantType::fp8: return LAUNCH<QuantType::fp8>(__VA_ARGS__);          \
    case QuantType::int4: return LAUNCH<QuantType::int4>(__VA_ARGS__);        \
  }                                                                           \
  return cudaErrorInvalidValue

template <QuantType T>
cudaError_t launch_gemv(const void* w, int64_t rows, int64_t cols, const float* x, float* out, int n_tokens,
                        cudaStream_t stream) {
  const unsigned blocks = unsigned((rows + kGemvWarps - 1) / kGemvWarps);
  gemv_kernel<T><<<blocks, 32 * kGemvWarps, 0, stream>>>(static_cast<const uint8_t*>(w), rows, cols,
                                                         quant_row_bytes(T, cols), x, out, n_tokens);
  HERD_LAUNCH_CHECK();
}

template <QuantType T>
cudaError_t launch_dequantize(const void* w, int64_t rows, int64_t cols, void* out, cudaStream_t stream) {
  const int64_t n = rows * (cols / 32);
  dequantize_kernel<T><<<unsigned((n + 255) / 256), 256, 0, stream>>>(
      static_cast<const uint8_t*>(w), rows, cols, quant_row_bytes(T, cols), static_cast<__nv_bfloat16*>(out));
  HERD_LAUNCH_CHECK();
}

template <QuantType T>
cudaError_t launch_embed(const void* table, int64_t n_vocab, int64_t cols, const int32_t* ids, float* out,
                         int n_tokens, cudaStream_t stream) {
  embed_kernel<T><<<unsigned(n_tokens), 128, 0, stream>>>(static_cast<const uint8_t*>(table), n_vocab, cols,
                                                         quant_row_bytes(T, cols), ids, out);
  HERD_LAUNCH_CHECK();
}

bool valid_cols(QuantType t, int64_t cols) { return cols > 0 && cols % block_shape(t).elems == 0; }

}  // namespace

int64_t quant_row_bytes(QuantType t, int64_t cols) {
  const BlockShape b = block_shape(t);
  return cols / b.elems * b.bytes;
}

cudaError_t quant_gemv(const void* w, QuantType t, int64_t rows, int64_t cols, const float* x, float* out,
                       int n_tokens, cudaStream_t stream) {
  if (rows == 0 || n_tokens == 0) return cudaSuccess;
  if (!valid_cols(t, cols) || n_tokens < 0 || n_tokens > kQuantGemvMaxTokens) return cudaErrorInvalidValue;
  HERD_QUANT_DISPATCH(t, launch_gemv, w, rows, cols, x, out, n_tokens, stream);
}

cudaError_t quant_dequantize(const void* w, QuantType t, int64_t rows, int64_t cols, void* out, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (!valid_cols(t, cols)) return cudaErrorInvalidValue;
  HERD_QUANT_DISPATCH(t, launch_dequantize, w, rows, cols, out, stream);
}

cudaError_t quant_embed(const void* table, QuantType t, int64_t n_vocab, int64_t cols, const int32_t* ids, float* out,
                        int n_tokens, cudaStream_t stream) {
  if (n_tokens == 0) return cudaSuccess;
  if (!valid_cols(t, cols)) return cudaErrorInvalidValue;
  HERD_QUANT_DISPATCH(t, launch_embed, table, n_vocab, cols, ids, out, n_tokens, stream);
}

}  // namespace herd::kernels
