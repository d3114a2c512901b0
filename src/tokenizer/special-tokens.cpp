#include "tokenizer/special-tokens.h"

#include <algorithm>
#include <functional>

#include "common/check.h"

namespace herd::tok {

void SpecialTokens::add(std::string text, int32_t id) {
  HERD_REQUIRE(!text.empty() && id >= 0, "special token ", id, " has empty text or a negative id");
  auto& lengths = lengths_by_first_byte_[static_cast<uint8_t>(text[0])];
  if (std::find(lengths.begin(), lengths.end(), text.size()) == lengths.end()) {
    lengths.push_back(text.size());
    std::sort(lengths.begin(), lengths.end(), std::greater<>{});
  }
  if (size_t(id) >= is_special_.size()) is_special_.resize(id + 1);
  is_special_[id] = true;
  by_text_.emplace(std::move(text), id);  // the first id given for a text wins
}

int32_t SpecialTokens::find(std::string_view text) const {
  const auto it = by_text_.find(std::string(text));
  return it == by_text_.end() ? -1 : it->second;
}

SpecialMatch SpecialTokens::next_in(std::string_view text, size_t from) const {
  for (size_t pos = from; pos < text.size(); ++pos) {
    for (size_t len : lengths_by_first_byte_[static_cast<uint8_t>(text[pos])]) {
      if (len > text.size() - pos) continue;
      if (const int32_t id = find(text.substr(pos, len)); id >= 0) return {pos, len, id};
    }
  }
  return {};
}

}  // namespace herd::tok
