#include "kernels/add-rmsnorm.cuh"

namespace herd::kernels {
namespace {

// Elements each thread keeps in registers between the add and the scaling: 4 float4s, or 16
// scalars when the rows are not 16-byte aligned (odd n_embd).
constexpr int kPerThread = 16;
constexpr int kMaxThreads = kAddRmsnormMaxEmbd / kPerThread;  // 1024

// One block per row. A "chunk" is a float4 (VEC) or one float; thread t owns chunks
// t, t + blockDim.x, ... (coalesced), holds x + y for them in registers across the block-wide sum
// of squares, and writes x and out from there: x and y are read once.
template <typename TW, bool VEC>
__global__ void __launch_bounds__(kMaxThreads) add_rmsnorm_kernel(float* x,                     // [n_rows, n_embd]
                                                                  const float* y,               // [n_rows, n_embd]
                                                                  const TW* __restrict__ w,     // [n_embd]
                                                                  float* out,                   // [n_rows, n_embd]
                                                                  int n_embd, int64_t x_stride, int64_t y_stride,
                                                                  int64_t out_stride, float eps) {
  constexpr int kWidth = VEC ? 4 : 1;  // floats per chunk
  constexpr int kChunks = kPerThread / kWidth;
  __shared__ float scratch[32];
  float* xr = x + blockIdx.x * x_stride;
  const float* yr = y + blockIdx.x * y_stride;
  float* outr = out + blockIdx.x * out_stride;
  const int n_chunks = n_embd / kWidth;  // VEC only when n_embd % 4 == 0

  float s[kPerThread];  // x + y of this thread's chunks, chunk c at s[c * kWidth, (c + 1) * kWidth)
  float ss = 0.f;
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int chunk = c * blockDim.x + threadIdx.x;
    if (chunk >= n_chunks) break;
    if constexpr (VEC) {
      float4 a = reinterpret_cast<const float4*>(xr)[chunk];
      const float4 b = reinterpret_cast<const float4*>(yr)[chunk];
      a.x += b.x, a.y += b.y, a.z += b.z, a.w += b.w;
      reinterpret_cast<float4*>(xr)[chunk] = a;
      s[4 * c + 0] = a.x, s[4 * c + 1] = a.y, s[4 * c + 2] = a.z, s[4 * c + 3] = a.w;
      ss += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
    } else {
      const float a = xr[chunk] + yr[chunk];
      xr[chunk] = a;
      s[c] = a;
      ss += a * a;
    }
  }
  ss = block_sum(ss, scratch);
  // Same expression as the rmsnorm kernel and the CPU reference: 1 / sqrt(mean + eps), then (x * scale) * w.
  const float scale = 1.0f / sqrtf(ss / float(n_embd) + eps);
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int chunk = c * blockDim.x + threadIdx.x;
    if (chunk >= n_chunks) break;
    if constexpr (VEC) {
      const int i = 4 * chunk;
      float4 r;
      r.x = s[4 * c + 0] * scale * to_f32(w[i + 0]);
      r.y = s[4 * c + 1] * scale * to_f32(w[i + 1]);
      r.z = s[4 * c + 2] * scale * to_f32(w[i + 2]);
      r.w = s[4 * c + 3] * scale * to_f32(w[i + 3]);
      reinterpret_cast<float4*>(outr)[chunk] = r;
    } else {
      outr[chunk] = s[c] * scale * to_f32(w[chunk]);
    }
  }
}

template <typename TW>
cudaError_t launch(float* x, const float* y, const void* w, float* out, int n_rows, int n_embd, int64_t x_stride,
                   int64_t y_stride, int64_t out_stride, float eps, cudaStream_t stream) {
  const bool vec = n_embd % 4 == 0 && x_stride % 4 == 0 && y_stride % 4 == 0 && out_stride % 4 == 0 &&
                   aligned16(x) && aligned16(y) && aligned16(out);
  // Just enough whole warps for kPerThread elements each: 256 threads at n_embd 4096, 1024 at 16384.
  const int per_block = (n_embd + kPerThread - 1) / kPerThread;
  const int n_threads = (per_block + 31) / 32 * 32;
  const TW* wt = static_cast<const TW*>(w);
  if (vec) {
    add_rmsnorm_kernel<TW, true>
        <<<n_rows, n_threads, 0, stream>>>(x, y, wt, out, n_embd, x_stride, y_stride, out_stride, eps);
  } else {
    add_rmsnorm_kernel<TW, false>
        <<<n_rows, n_threads, 0, stream>>>(x, y, wt, out, n_embd, x_stride, y_stride, out_stride, eps);
  }
  HERD_LAUNCH_CHECK();
}

}  // namespace

cudaError_t add_rmsnorm(float* x, const float* y, const void* w, ElemType w_type, float* out, int n_rows, int n_embd,
                        int64_t x_stride, int64_t y_stride, int64_t out_stride, float eps, cudaStream_t stream) {
  if (n_rows == 0) return cudaSuccess;
  if (n_rows < 0 || n_embd <= 0 || n_embd > kAddRmsnormMaxEmbd) return cudaErrorInvalidValue;
  switch (w_type) {
    case ElemType::f32:
      return launch<float>(x, y, w, out, n_rows, n_embd, x_stride, y_stride, out_stride, eps, stream);
    case ElemType::f16:
      return launch<__half>(x, y, w, out, n_rows, n_embd, x_stride, y_stride, out_stride, eps, stream);
    case ElemType::bf16:
      return launch<__nv_bfloat16>(x, y, w, out, n_rows, n_embd, x_stride, y_stride, out_stride, eps, stream);
    case ElemType::fp8_e4m3: break;  // a KV cache type only
  }
  return cudaErrorInvalidValue;
}

}  // namespace herd::kernels
