// UTF-8 decoding and the three Unicode properties the Llama 3 pattern uses: \p{L}, \p{N} and
// White_Space (what tiktoken's Rust regex calls \s).
#pragma once

#include <cstddef>
#include <cstdint>

namespace herd::tok {

enum class CharClass : uint8_t {
  other,    // none of the below; also every byte of invalid UTF-8
  letter,   // \p{L}
  number,   // \p{N}
  space,    // White_Space other than CR and LF
  newline,  // CR or LF
};

inline constexpr uint32_t kInvalidCodePoint = 0xFFFFFFFF;

struct DecodedChar {
  uint32_t cp;   // kInvalidCodePoint for a byte that does not start a valid sequence
  uint32_t len;  // bytes consumed: 1 for an invalid byte
};

// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). n >= 1.
DecodedChar decode_utf8(const uint8_t* s, size_t n);

// The class of a code point (kInvalidCodePoint is `other`).
CharClass char_class(uint32_t cp);

// Number of bytes of a complete, valid UTF-8 prefix of s[0, n) that a streaming decoder may
// emit now: it holds back only a trailing sequence that is incomplete yet could still become
// valid. Invalid bytes are never held back.
size_t utf8_emittable_prefix(const uint8_t* s, size_t n);

}  // namespace herd::tok
