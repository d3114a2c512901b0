// Where a CUDA backend runs: its device and its one stream. For code beside the backend in
// src/backend/cuda (the NCCL communicator) that must order its own work with the backend's ops;
// cuda-backend.h stays free of CUDA types, so this lives apart from it.
#pragma once

#include <cuda_runtime_api.h>

#include "backend/backend.h"

namespace herd {

struct CudaPlace {
  int device = 0;
  cudaStream_t stream = nullptr;  // cudaStreamNonBlocking; every op of the backend runs on it, in order
};

// backend must be one that make_cuda_backend made (a bug otherwise).
CudaPlace cuda_place(Backend& backend);

}  // namespace herd
