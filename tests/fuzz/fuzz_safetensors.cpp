// libFuzzer target for the safetensors header parser: any bytes must give a header whose
// every tensor lies inside the buffer, or a herd::Error; never a crash or an out-of-range view.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/check.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const herd::SafetensorsHeader h = herd::parse_safetensors_header(data, size, "fuzz");
    for (const auto& t : h.tensors) {
      if (h.data_start + t.end > size || t.begin > t.end) std::abort();
      if (t.end - t.begin != uint64_t(herd::shape_numel(t.shape)) * herd::dtype_size(t.dtype)) std::abort();
    }
  } catch (const herd::Error&) {
  }
  return 0;
}
