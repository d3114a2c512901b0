#include "kernels/embed.cuh"

#include <cmath>

namespace herd::kernels {
namespace {

template <typename T>
__global__ void embed_kernel(const T* __restrict__ table,    // [n_vocab, n_embd]
                             const int32_t* __restrict__ ids,  // [n_tokens]
                             float* __restrict__ out,          // [n_tokens, n_embd]
                             int n_embd, int64_t n_vocab) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  float* o = out + t * n_embd;
  if (id == -1) {  // a row another tensor-parallel rank holds
    for (int i = threadIdx.x; i < n_embd; i += blockDim.x) o[i] = 0.0f;
    return;
  }
  if (id < 0 || id >= n_vocab) {
    for (int i = threadIdx.x; i < n_embd; i += blockDim.x) o[i] = NAN;
    return;
  }
  const T* row = table + int64_t(id) * n_embd;
  // Consecutive threads read consecutive elements: coalesced; the gather is tiny next to a matmul.
  for (int i = threadIdx.x; i < n_embd; i += blockDim.x) o[i] = to_f32(row[i]);
}

template <typename T>
cudaError_t launch(const void* table, const int32_t* ids, float* out, int n_tokens, int n_embd,
                   int64_t n_vocab, cudaStream_t stream) {
  embed_kernel<T><<<n_tokens, 256, 0, stream>>>(static_cast<const T*>(table), ids, out, n_embd, n_vocab);
  HERD_LAUNCH_CHECK();
}

}  // namespace

cudaError_t embed(const void* table, ElemType table_type, const int32_t* ids, float* out, int n_tokens,
                  int n_embd, int64_t n_vocab, cudaStream_t stream) {
  if (n_tokens == 0) return cudaSuccess;
  switch (table_type) {
    case ElemType::f32: return launch<float>(table, ids, out, n_tokens, n_embd, n_vocab, stream);
    case ElemType::f16: return launch<__half>(table, ids, out, n_tokens, n_embd, n_vocab, stream);
    case ElemType::bf16: return launch<__nv_bfloat16>(table, ids, out, n_tokens, n_embd, n_vocab, stream);
    case ElemType::fp8_e4m3: break;  // a KV cache type only
  }
  return cudaErrorInvalidValue;
}

}  // namespace herd::kernels
