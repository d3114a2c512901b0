// The CUDA backend: the Backend interface over our kernels (kernels/) and cuBLAS.
// No CUDA type appears here, so that code outside src/backend/cuda never sees CUDA.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace herd {

// True when a CUDA driver is loaded and at least one device is visible.
bool cuda_device_available();

// A backend on one device: its own stream, cuBLAS handle and workspace. Ops are asynchronous on
// that stream; read() waits for them, and errors of earlier kernels surface there at the latest.
// Throws herd::Error when the device cannot be used. kv_fp8: an FP8 E4M3 KV cache instead of bf16.
// flash_attention: steps with prefill chunks attend on tensor cores (sm_80 and up; q and
// probabilities rounded to bf16), unless HERD_CUDA_FLASH=off; false keeps every step on the f32 kernel.
std::unique_ptr<Backend> make_cuda_backend(int device, bool kv_fp8 = false, bool flash_attention = true);

// True for a backend that make_cuda_backend made.
bool is_cuda_backend(const Backend& backend);

}  // namespace herd
