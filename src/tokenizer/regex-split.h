// Pre-tokenization by a regular expression through PCRE2 (UTF, UCP, JIT). It serves
// tokenizer.json files whose split pattern is not Llama 3's, and is the reference the
// hand-written splitter (pretokenize.h) is tested and fuzzed against.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace herd::tok {

// The Llama 3 split pattern as written by Meta, tiktoken and Hugging Face.
extern const char* const kLlama3Pattern;

// Rewrites \s and \S as explicit classes of Unicode White_Space, because PCRE2's UCP \s
// also matches U+180E and tiktoken's does not. Throws on a \S inside [...] (unsupported).
std::string with_unicode_white_space(std::string_view pattern);

class RegexSplitter {
 public:
  // Compiles with_unicode_white_space(pattern); throws an invalid-input Error on a bad pattern.
  explicit RegexSplitter(std::string_view pattern);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Appends the pieces of `text` (valid UTF-8) to `out`. Text between matches, which the
  // Llama 3 pattern never leaves, becomes a piece of its own so that nothing is dropped.
  void split(std::string_view text, std::vector<std::string_view>& out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace herd::tok
