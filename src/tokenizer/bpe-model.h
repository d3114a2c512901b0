// Byte-level BPE with tiktoken's semantics: Llama 3 (and any tiktoken or Hugging Face
// ByteLevel vocabulary whose merge order is its token order).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/byte-map.h"
#include "tokenizer/model.h"
#include "tokenizer/regex-split.h"

namespace herd::tok {

// How text is cut into pieces before BPE: a split pattern, run by the hand-written splitter
// when it is exactly Meta's Llama 3 pattern and by PCRE2 otherwise, optionally after every
// digit has been cut out as a piece of its own (Hugging Face's Digits(individual_digits),
// llama.cpp's "smollm" pre-tokenizer).
struct Pretokenizer {
  std::string pattern;
  bool isolate_digits = false;
};

// Ids [first, end): the special tokens of vocabularies that append them after the BPE tokens.
std::vector<int32_t> id_range(int32_t first, int32_t end);

class BpeModel final : public Model {
 public:
  // tokens: every id's bytes (special tokens hold their text). Ids not in special_ids are BPE
  // tokens whose rank is their id. A single byte without a token is dropped when encoded, as
  // Hugging Face and llama.cpp do for vocabularies that lack some bytes. `source` names the
  // file in error messages.
  BpeModel(TokenTable tokens, const std::vector<int32_t>& special_ids, const Pretokenizer& pre, int32_t bos_id,
           std::string_view source);

 private:
  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const override;
  void encode_split(std::string_view text, std::vector<int32_t>& out) const;

  ByteMap ranks_;
  std::unique_ptr<RegexSplitter> regex_;  // null: the hand-written Llama 3 splitter
  bool isolate_digits_ = false;
};

}  // namespace herd::tok
