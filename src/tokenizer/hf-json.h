// Hugging Face tokenizer.json for byte-level BPE (docs/llama31.md, "tokenizer.json"): model.vocab maps the
// GPT-2 byte-to-unicode spelling of each token to its id; added_tokens are the special tokens.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/model.h"

namespace herd::tok {

// Supports model.type "BPE" with the pre-tokenizer Sequence[Split(Regex, Isolated),
// ByteLevel(use_regex false)] or ByteLevel(use_regex true) alone. The merges must follow token
// order (each merge's result ranked by its id, as in every tiktoken-derived file); the file
// is refused otherwise, since merging by rank would then differ from it.
std::unique_ptr<Model> load_hf_json(std::string_view content, const std::string& source);

}  // namespace herd::tok
