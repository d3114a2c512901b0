#include "tokenizer/byte-level.h"

#include <array>

#include "common/check.h"
#include "tokenizer/unicode.h"

namespace herd::tok {
namespace {

// Inverse of GPT-2's bytes_to_unicode: printable bytes stand for themselves, the other 68
// map to U+0100 + k in increasing byte order. Code points up to U+0143 are involved.
std::array<int16_t, 0x144> unicode_to_byte_table() {
  std::array<int16_t, 0x144> t{};
  t.fill(-1);
  int k = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    t[printable ? b : 0x100 + k++] = static_cast<int16_t>(b);
  }
  return t;
}

}  // namespace

std::optional<std::string> byte_level_to_bytes(std::string_view key) {
  static const std::array<int16_t, 0x144> table = unicode_to_byte_table();
  std::string out;
  const auto* s = reinterpret_cast<const uint8_t*>(key.data());
  for (size_t i = 0; i < key.size();) {
    const DecodedChar c = decode_utf8(s + i, key.size() - i);
    if (c.cp >= table.size() || table[c.cp] < 0) return std::nullopt;
    out.push_back(static_cast<char>(table[c.cp]));
    i += c.len;
  }
  return out;
}

std::pair<std::string, std::string> split_merge(std::string_view text, const std::string& source) {
  const size_t space = text.find(' ');
  HERD_REQUIRE(space != std::string_view::npos && text.find(' ', space + 1) == std::string_view::npos, source,
               ": merge \"", text, "\" is not two tokens separated by one space");
  return {std::string(text.substr(0, space)), std::string(text.substr(space + 1))};
}

void check_merge_order(const std::vector<std::pair<std::string, std::string>>& merges,
                       const std::unordered_map<std::string, int32_t>& ids, const std::string& source) {
  int32_t last = -1;
  for (const auto& [left, right] : merges) {
    const auto l = ids.find(left), r = ids.find(right), lr = ids.find(left + right);
    HERD_REQUIRE(l != ids.end() && r != ids.end() && lr != ids.end(), source, ": merge \"", left, " ", right,
                 "\" uses or makes a string that is not in the vocabulary");
    HERD_REQUIRE(lr->second >= last, source, ": merge \"", left, " ", right,
                 "\" comes after a merge making a higher id; merges not in token order are not supported");
    last = lr->second;
  }
}

}  // namespace herd::tok
