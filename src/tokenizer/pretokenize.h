// The Llama 3 pre-tokenizer, hand-written (docs/llama31.md, "Pre-tokenizer"):
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//   \s*[\r\n]+|\s+(?!\S)|\s+
// with \s = Unicode White_Space. regex-split.h runs the same pattern through PCRE2; the tests
// and the fuzz target prove the two equal on valid UTF-8. An invalid byte is one character of
// class `other` (a regex engine would refuse such input).
#pragma once

#include <cstddef>
#include <string_view>

namespace herd::tok {

// End (byte offset) of the piece that starts at `pos`; pos < text.size().
size_t llama3_piece_end(std::string_view text, size_t pos);

}  // namespace herd::tok
