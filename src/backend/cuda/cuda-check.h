// Checked CUDA and cuBLAS calls for the CUDA backend's host code (a failure is an internal
// herd::Error naming the call), and the grow-only device scratch buffer its ops share.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "common/check.h"

#define HERD_CUDA_CHECK(expr)                                                                     \
  do {                                                                                            \
    const cudaError_t herd_e_ = (expr);                                                           \
    if (herd_e_ != cudaSuccess)                                                                   \
      throw ::herd::Error(::herd::ErrorKind::internal,                                            \
                          ::herd::str_cat(__FILE__, ":", __LINE__, ": ", #expr, " failed: ",       \
                                          cudaGetErrorName(herd_e_), " (", cudaGetErrorString(herd_e_), ")")); \
  } while (0)

#define HERD_CUBLAS_CHECK(expr)                                                                    \
  do {                                                                                             \
    const cublasStatus_t herd_s_ = (expr);                                                         \
    if (herd_s_ != CUBLAS_STATUS_SUCCESS)                                                          \
      throw ::herd::Error(::herd::ErrorKind::internal,                                             \
                          ::herd::str_cat(__FILE__, ":", __LINE__, ": ", #expr, " failed: ",        \
                                          cublasGetStatusName(herd_s_), " (", cublasGetStatusString(herd_s_), ")")); \
  } while (0)

namespace herd {

// A device buffer that only grows: scratch for casts and attention partials, reused every call
// (all work is ordered on one stream, so reuse needs no synchronisation). Each move bumps *epoch:
// recorded steps that read the old buffer are stale (Backend::memory_epoch).
class Scratch {
 public:
  explicit Scratch(uint64_t* epoch) : epoch_(epoch) {}
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  void* get(size_t nbytes, cudaStream_t stream) {
    if (nbytes > size_) {
      // Queued kernels may still read the old buffer.
      HERD_CUDA_CHECK(cudaStreamSynchronize(stream));
      if (ptr_ != nullptr) HERD_CUDA_CHECK(cudaFree(ptr_));
      ptr_ = nullptr;
      size_ = 0;
      ++*epoch_;
      HERD_CUDA_CHECK(cudaMalloc(&ptr_, nbytes));
      size_ = nbytes;
    }
    return ptr_;
  }

 private:
  uint64_t* epoch_;
  void* ptr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace herd
