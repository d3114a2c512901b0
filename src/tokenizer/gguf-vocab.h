// The tokenizer a GGUF file carries in its tokenizer.ggml.* keys.
#pragma once

#include <memory>

#include "common/gguf-file.h"
#include "tokenizer/model.h"

namespace herd::tok {

// Byte-level BPE ("gpt2") vocabularies with the pre-tokenizers "llama-bpe" (Llama 3), "smollm"
// and "default"/"gpt-2". Control and user-defined tokens are special; tokenizer.ggml.add_bos_token
// and tokenizer.chat_template are kept. Invalid input names the file and the key otherwise.
std::unique_ptr<Model> load_gguf_vocab(const GgufFile& file);

}  // namespace herd::tok
