#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <vector>

namespace herd::tok {
namespace {

struct CodeRange {
  uint32_t first, last;
};
#include "tokenizer/unicode-tables.inc"

// Unicode White_Space (PropList.txt, unchanged since Unicode 6.3 dropped U+180E). PCRE2's UCP
// \s still includes U+180E; tiktoken's and Hugging Face's do not, and neither does this list.
constexpr CodeRange kWhiteSpaceRanges[] = {{0x9, 0xD},       {0x20, 0x20},     {0x85, 0x85},
                                           {0xA0, 0xA0},     {0x1680, 0x1680}, {0x2000, 0x200A},
                                           {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F},
                                           {0x3000, 0x3000}};

// Two-stage lookup: blocks of 128 code points, identical blocks shared. About 40 KB.
constexpr uint32_t kBlockBits = 7;
constexpr uint32_t kBlockSize = 1u << kBlockBits;
constexpr uint32_t kNumCodePoints = 0x110000;

struct ClassTable {
  std::vector<uint16_t> block_of;  // [kNumCodePoints / kBlockSize]
  std::vector<CharClass> classes;  // [n_unique_blocks * kBlockSize]

  ClassTable() {
    std::vector<CharClass> flat(kNumCodePoints, CharClass::other);
    auto paint = [&](const auto& ranges, CharClass cls) {
      for (const CodeRange& r : ranges)
        for (uint32_t cp = r.first; cp <= r.last; ++cp) flat[cp] = cls;
    };
    paint(kLetterRanges, CharClass::letter);
    paint(kNumberRanges, CharClass::number);
    paint(kWhiteSpaceRanges, CharClass::space);
    flat['\r'] = flat['\n'] = CharClass::newline;

    block_of.resize(kNumCodePoints / kBlockSize);
    for (uint32_t b = 0; b < block_of.size(); ++b) {
      const CharClass* block = flat.data() + b * kBlockSize;
      size_t found = classes.size() / kBlockSize;
      for (size_t u = 0; u < classes.size() / kBlockSize; ++u)
        if (std::equal(block, block + kBlockSize, classes.data() + u * kBlockSize)) {
          found = u;
          break;
        }
      if (found == classes.size() / kBlockSize) classes.insert(classes.end(), block, block + kBlockSize);
      block_of[b] = static_cast<uint16_t>(found);
    }
  }
};

const ClassTable& class_table() {
  static const ClassTable table;
  return table;
}

// Expected length of a sequence from its lead byte; 0 for a byte that cannot lead one.
constexpr std::array<uint8_t, 256> kSequenceLength = [] {
  std::array<uint8_t, 256> t{};
  for (int b = 0; b < 0x80; ++b) t[b] = 1;
  for (int b = 0xC2; b < 0xE0; ++b) t[b] = 2;
  for (int b = 0xE0; b < 0xF0; ++b) t[b] = 3;
  for (int b = 0xF0; b < 0xF5; ++b) t[b] = 4;
  return t;
}();

// Valid range of the second byte, which rules out overlongs, surrogates and > U+10FFFF.
inline bool second_byte_ok(uint8_t lead, uint8_t b) {
  switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return (b & 0xC0) == 0x80;
  }
}

// How many bytes of s[0, n) form a valid prefix of one sequence of `need` >= 2 bytes.
inline size_t valid_prefix_len(const uint8_t* s, size_t n, size_t need) {
  if (n < 2 || !second_byte_ok(s[0], s[1])) return 1;
  size_t k = 2;
  while (k < n && k < need && (s[k] & 0xC0) == 0x80) ++k;
  return k;
}

}  // namespace

DecodedChar decode_utf8(const uint8_t* s, size_t n) {
  const uint8_t lead = s[0];
  const size_t need = kSequenceLength[lead];
  if (need == 1) return {lead, 1};
  if (need == 0 || valid_prefix_len(s, n, need) != need) return {kInvalidCodePoint, 1};
  uint32_t cp = lead & (0x7F >> need);
  for (size_t k = 1; k < need; ++k) cp = (cp << 6) | (s[k] & 0x3F);
  return {cp, static_cast<uint32_t>(need)};
}

CharClass char_class(uint32_t cp) {
  if (cp >= kNumCodePoints) return CharClass::other;
  const ClassTable& t = class_table();
  return t.classes[size_t{t.block_of[cp >> kBlockBits]} * kBlockSize + (cp & (kBlockSize - 1))];
}

size_t utf8_emittable_prefix(const uint8_t* s, size_t n) {
  // Only the last three bytes can start an unfinished sequence.
  size_t start = n > 3 ? n - 3 : 0;
  for (size_t i = start; i < n; ++i) {
    const size_t need = kSequenceLength[s[i]];
    if (need < 2) continue;
    const size_t have = valid_prefix_len(s + i, n - i, need);
    if (have == n - i && have < need) return i;
  }
  return n;
}

}  // namespace herd::tok
