#include "tokenizer/bpe-model.h"

#include "common/check.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"

namespace herd::tok {
namespace {

std::vector<bool> marks(const std::vector<int32_t>& ids, int32_t n, std::string_view source) {
  std::vector<bool> out(size_t(n), false);
  for (int32_t id : ids) {
    HERD_REQUIRE(id >= 0 && id < n, source, ": special token id ", id, " is outside the vocabulary");
    out[size_t(id)] = true;
  }
  return out;
}

}  // namespace

std::vector<int32_t> id_range(int32_t first, int32_t end) {
  std::vector<int32_t> ids;
  for (int32_t id = first; id < end; ++id) ids.push_back(id);
  return ids;
}

BpeModel::BpeModel(TokenTable tokens, const std::vector<int32_t>& special_ids, const Pretokenizer& pre,
                   int32_t bos_id, std::string_view source)
    : Model(std::move(tokens)), ranks_(tokens_, marks(special_ids, tokens_.size(), source)),
      isolate_digits_(pre.isolate_digits) {
  for (int32_t id : special_ids) {
    HERD_REQUIRE(!tokens_.bytes(id).empty(), source, ": special token ", id, " has empty text");
    specials_.add(std::string(tokens_.bytes(id)), id);
  }
  HERD_REQUIRE(bos_id < tokens_.size(), source, ": BOS id ", bos_id, " is outside the vocabulary");
  bos_id_ = bos_id;
  // Other spellings of the pattern (llama.cpp's has no inline flag, so it does not fold
  // U+017F) go through PCRE2, which matches each exactly as written.
  if (pre.pattern != kLlama3Pattern) regex_ = std::make_unique<RegexSplitter>(pre.pattern);
}

void BpeModel::encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
  if (!isolate_digits_) return encode_split(text, out);
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  size_t start = 0;
  for (size_t pos = 0; pos < text.size();) {
    const DecodedChar c = decode_utf8(s + pos, text.size() - pos);
    if (char_class(c.cp) == CharClass::number) {
      encode_split(text.substr(start, pos - start), out);
      bpe_encode_piece(ranks_, text.substr(pos, c.len), out);
      start = pos + c.len;
    }
    pos += c.len;
  }
  encode_split(text.substr(start), out);
}

void BpeModel::encode_split(std::string_view text, std::vector<int32_t>& out) const {
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
