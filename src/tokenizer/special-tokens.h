// The special tokens of a vocabulary (<|eot_id|>, <s>, ...): lookup by text, and finding
// them inside text when the caller allows special tokens.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace herd::tok {

struct SpecialMatch {
  size_t pos = std::string_view::npos;  // npos when there is none
  size_t len = 0;
  int32_t id = -1;
};

class SpecialTokens {
 public:
  void add(std::string text, int32_t id);
  // The id of a special token given its exact text, or -1.
  int32_t find(std::string_view text) const;
  // The first special token in text[from, ...): the leftmost, and at that spot the longest.
  SpecialMatch next_in(std::string_view text, size_t from) const;
  bool empty() const { return by_text_.empty(); }
  bool is_special(int32_t id) const { return id >= 0 && size_t(id) < is_special_.size() && is_special_[id]; }

 private:
  std::unordered_map<std::string, int32_t> by_text_;
  std::vector<bool> is_special_;  // [largest id + 1]
  // Distinct lengths of the tokens that start with each byte, longest first.
  std::array<std::vector<size_t>, 256> lengths_by_first_byte_;
};

}  // namespace herd::tok
