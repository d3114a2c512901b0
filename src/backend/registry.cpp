// Chooses a backend by name; the only place that knows which backends were compiled in.
#include "backend/backend.h"
#include "common/check.h"

#ifdef HERD_WITH_CUDA
#include "backend/cuda/cuda-backend.h"
#endif

namespace herd {

bool kv_fp8_named(const std::string& kv_dtype) {
  if (kv_dtype == "fp8") return true;
  HERD_REQUIRE(kv_dtype == "auto", "kv_dtype \"", kv_dtype,
               "\": expected auto (the backend's own type: f16 on the CPU, f32 with exact, bf16 on CUDA) or fp8");
  return false;
}

bool cuda_usable() {
#ifdef HERD_WITH_CUDA
  return cuda_device_available();
#else
  return false;
#endif
}

std::unique_ptr<Backend> make_backend(const BackendOptions& o) {
  const std::string& device = o.device;
  if (device == "cpu" || (device == "auto" && !cuda_usable())) return make_cpu_backend(o.n_threads, o.exact, o.kv_fp8);
  if (device == "cuda" || device == "auto") {
#ifdef HERD_WITH_CUDA
    HERD_REQUIRE(cuda_device_available(), "device cuda: no usable CUDA device found; use the CPU");
    return make_cuda_backend(o.cuda_device, o.kv_fp8);
#else
    fail_input("device cuda: this herd was built without CUDA (configure with -DHERD_CUDA=ON)");
#endif
  }
  fail_input("device ", device, ": unknown; expected cpu, cuda or auto");
}

}  // namespace herd
