// libFuzzer target for the GGUF reader (header, metadata of every type, tensor infos) and the
// vocabulary built from it: any bytes give a file whose every tensor lies inside the buffer, or a
// herd::Error; never a crash, a hang or an out-of-range read.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/check.h"
#include "common/gguf-file.h"
#include "tokenizer/gguf-vocab.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const herd::GgufFile f(data, size, "fuzz");
    for (const auto& t : f.tensors()) {
      const auto* p = static_cast<const uint8_t*>(t.data);
      if (p < data || p + f.view(t).nbytes() > data + size) std::abort();
    }
    for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.merges", "general.languages"})
      try {
        (void)f.get_strings(key);
      } catch (const herd::Error&) {
      }
    try {
      (void)f.get_ints("tokenizer.ggml.token_type");
    } catch (const herd::Error&) {
    }
    (void)herd::tok::load_gguf_vocab(f);
  } catch (const herd::Error&) {
  }
  return 0;
}
