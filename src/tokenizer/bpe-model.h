// Byte-level BPE with tiktoken's semantics: Llama 3 (and any tiktoken or Hugging Face
// ByteLevel vocabulary whose merge order is its token order).
#pragma once

#include <memory>
#include <string_view>

#include "tokenizer/byte-map.h"
#include "tokenizer/model.h"
#include "tokenizer/regex-split.h"

namespace herd::tok {

class BpeModel final : public Model {
 public:
  // tokens: ids [0, n_mergeable) are BPE tokens whose rank is their id, every single byte
  // among them; ids [n_mergeable, size) are special tokens holding their text. The Llama 3
  // pattern, exactly as Meta spells it, runs on the hand-written splitter, any other through PCRE2.
  // `source` names the file in error messages.
  BpeModel(TokenTable tokens, int32_t n_mergeable, std::string_view pattern, int32_t bos_id,
           std::string_view source);

 private:
  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const override;

  ByteMap ranks_;
  std::unique_ptr<RegexSplitter> regex_;  // null: the hand-written Llama 3 splitter
};

}  // namespace herd::tok
