#include "kernels/gather-rows.cuh"

#include <cmath>

namespace herd::kernels {
namespace {

__global__ void gather_rows_kernel(const float* __restrict__ x,       // [n_rows_x, n_cols]
                                   const int32_t* __restrict__ rows,  // [n_rows]
                                   float* __restrict__ out,           // [n_rows, n_cols]
                                   int64_t n_rows_x, int n_cols) {
  const int64_t r = blockIdx.x;
  const int32_t src = rows[r];
  float* o = out + r * n_cols;
  if (src < 0 || src >= n_rows_x) {
    for (int i = threadIdx.x; i < n_cols; i += blockDim.x) o[i] = NAN;
    return;
  }
  const float* s = x + int64_t(src) * n_cols;
  for (int i = threadIdx.x; i < n_cols; i += blockDim.x) o[i] = s[i];
}

}  // namespace

cudaError_t gather_rows(const float* x, const int32_t* rows, float* out, int n_rows, int64_t n_rows_x, int n_cols,
                        cudaStream_t stream) {
  if (n_rows == 0) return cudaSuccess;
  gather_rows_kernel<<<n_rows, 256, 0, stream>>>(x, rows, out, n_rows_x, n_cols);
  HERD_LAUNCH_CHECK();
}

}  // namespace herd::kernels
