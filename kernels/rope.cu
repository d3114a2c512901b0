#include "kernels/rope.cuh"

namespace herd::kernels {
namespace {

// threadIdx.x = frequency index i, threadIdx.y = token within the block. Each thread computes its
// sin/cos once (precise sincosf: angles reach ~1e5 rad at long contexts) and applies it to every head.
__global__ void rope_kernel(float* __restrict__ x,               // [n_tokens, n_head, head_dim]
                            const int32_t* __restrict__ pos,     // [n_tokens]
                            const float* __restrict__ inv_freq,  // [half]
                            int n_tokens, int n_head, int half, int64_t x_stride) {
  const int i = threadIdx.x;
  const int64_t t = int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  if (t >= n_tokens) return;
  const float angle = float(pos[t]) * inv_freq[i];
  float s, c;
  sincosf(angle, &s, &c);
  float* row = x + t * x_stride;
  const int head_dim = 2 * half;
  for (int h = 0; h < n_head; ++h) {
    float* v = row + int64_t(h) * head_dim;
    const float a = v[i], b = v[i + half];
    v[i] = a * c - b * s;
    v[i + half] = b * c + a * s;
  }
}

}  // namespace

cudaError_t rope(float* x, const int32_t* pos, const float* inv_freq, int n_tokens, int n_head, int head_dim,
                 int64_t x_stride, cudaStream_t stream) {
  if (n_tokens == 0) return cudaSuccess;
  const int half = head_dim / 2;
  if (head_dim % 2 != 0 || half > 1024) return cudaErrorInvalidValue;
  const int tokens_per_block = half >= 256 ? 1 : 256 / half;
  const dim3 block(half, tokens_per_block);
  const int n_blocks = (n_tokens + tokens_per_block - 1) / tokens_per_block;
  rope_kernel<<<n_blocks, block, 0, stream>>>(x, pos, inv_freq, n_tokens, n_head, half, x_stride);
  HERD_LAUNCH_CHECK();
}

}  // namespace herd::kernels
