// Meta's tokenizer.model: tiktoken BPE ranks, one "base64(bytes) rank" line per token
// (docs/llama31.md, "tokenizer.model"). The 256 Llama 3.1 special tokens follow the ranks, as Meta's code
// appends them.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/model.h"

namespace herd::tok {

// Whether `content` starts like a tiktoken rank file.
bool looks_like_tiktoken(std::string_view content);

std::unique_ptr<Model> load_tiktoken(std::string_view content, const std::string& source);

// The text of special token 128000 + k, as Llama 3.1's tokenizer.json names it.
std::string llama31_special_token(int k);

}  // namespace herd::tok
