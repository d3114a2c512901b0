// SentencePiece models (the Llama 2 family's tokenizer.model) through libsentencepiece.
// Without the library (HERD_WITH_SENTENCEPIECE unset) loading one is a clear error.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/model.h"

namespace herd::tok {

// A serialized ModelProto starts with its first `pieces` entry (field 1), which starts with
// that piece's text (field 1): bytes 0x0A, varint length, 0x0A.
bool looks_like_sentencepiece(std::string_view content);

// Encoding is SentencePiece's own. Decoding (shared with BPE) writes byte pieces as bytes,
// U+2581 as a space, drops the space SentencePiece adds in front of the text, and writes
// control and unknown pieces (<s>, </s>, <unk>) as their text: the special tokens.
std::unique_ptr<Model> load_sentencepiece(std::string_view content, const std::string& source);

}  // namespace herd::tok
