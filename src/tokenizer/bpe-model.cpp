#include "tokenizer/bpe-model.h"

#include "common/check.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"

namespace herd::tok {
BpeModel::BpeModel(TokenTable tokens, int32_t n_mergeable, std::string_view pattern, int32_t bos_id,
                   std::string_view source)
    : Model(std::move(tokens)), ranks_(tokens_, n_mergeable) {
  for (int b = 0; b < 256; ++b) {
    const char byte = static_cast<char>(b);
    HERD_REQUIRE(ranks_.find(std::string_view(&byte, 1)) >= 0, source,
                 ": the vocabulary has no token for the single byte ", b,
                 " (a byte-level BPE needs all 256)");
  }
  for (int32_t id = n_mergeable; id < tokens_.size(); ++id)
    specials_.add(std::string(tokens_.bytes(id)), id);
  HERD_REQUIRE(bos_id < tokens_.size(), source, ": BOS id ", bos_id, " is outside the vocabulary");
  bos_id_ = bos_id;
  // Other spellings of the pattern (llama.cpp's has no inline flag, so it does not fold
  // U+017F) go through PCRE2, which matches each exactly as written.
  if (pattern != kLlama3Pattern) regex_ = std::make_unique<RegexSplitter>(pattern);
}

void BpeModel::encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
  if (regex_) {
    thread_local std::vector<std::string_view> pieces;
    pieces.clear();
    regex_->split(text, pieces);
    for (std::string_view p : pieces) bpe_encode_piece(ranks_, p, out);
    return;
  }
  for (size_t pos = 0, end; pos < text.size(); pos = end) {
    end = llama3_piece_end(text, pos);
    bpe_encode_piece(ranks_, text.substr(pos, end - pos), out);
  }
}

}  // namespace herd::tok
