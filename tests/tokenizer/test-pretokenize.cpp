// The hand-written Llama 3 splitter against PCRE2 running the pattern itself, and the Unicode
// tables against PCRE2's. PCRE2 is an independent implementation of \p{L}, \p{N} and the regex.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <random>

#include "tokenizer-fixture.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/regex-split.h"
#include "tokenizer/unicode.h"

namespace herd_test {
namespace {

using herd::tok::CharClass;

std::vector<std::string> hand_split(const std::string& text) {
  std::vector<std::string> out;
  for (size_t pos = 0, end; pos < text.size(); pos = end) {
    end = herd::tok::llama3_piece_end(text, pos);
    out.push_back(text.substr(pos, end - pos));
  }
  return out;
}

std::vector<std::string> regex_split(const std::string& text) {
  static const herd::tok::RegexSplitter splitter(herd::tok::kLlama3Pattern);
  std::vector<std::string_view> views;
  splitter.split(text, views);
  return {views.begin(), views.end()};
}

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += char(0xE0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xF0 | (cp >> 18)), s += char(0x80 | ((cp >> 12) & 0x3F));
    s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

TEST(Pretokenize, SpecExamples) {
  using V = std::vector<std::string>;
  EXPECT_EQ(hand_split("1234567890"), (V{"123", "456", "789", "0"}));
  EXPECT_EQ(hand_split(" 2023"), (V{" ", "202", "3"}));
  EXPECT_EQ(hand_split("a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(hand_split("it's HE'LL"), (V{"it", "'s", " HE", "'LL"}));
  EXPECT_EQ(hand_split("x  \n\n  y"), (V{"x", "  \n\n", " ", " y"}));
  EXPECT_EQ(hand_split("hi!!\n\nyo"), (V{"hi", "!!\n\n", "yo"}));
  EXPECT_EQ(hand_split("   "), (V{"   "}));
}

TEST(Pretokenize, EqualsPcre2OnEveryVector) {
  auto vectors = load_vectors();
  for (const Vector& v : load_llamacpp_vectors()) vectors.push_back(v);
  for (const Vector& v : load_vectors("tokenizer_encode_cases.jsonl")) vectors.push_back(v);
  for (const Vector& v : vectors) EXPECT_EQ(hand_split(v.text), regex_split(v.text)) << v.text;
}

// Random strings over the characters where the pattern's branches meet.
TEST(Pretokenize, EqualsPcre2OnRandomStrings) {
  const std::vector<uint32_t> alphabet = {
      'a', 'Z', 's', 'S', 't', 'l', 'L', 'e', 'r', 'v', 'm', 'd', '0', '7', '\'', ' ', ' ', '\t', '\n', '\r',
      '\v', '\f', '!', '.', '-', '_', '<', '|', '>', 0x00, 0x85, 0xA0, 0x17F, 0x180E, 0x200B, 0x2003, 0x2028,
      0x3000, 0xFEFF, 0x0301, 0x0915, 0x094D, 0x0E01, 0x0E31, 0x0E50, 0x4E2D, 0x00B2, 0x2160, 0x1F600,
      0x1F1FA, 0x200D, 0x2019, 0xE9, 0xDF};
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 20000; ++iter) {
    std::string text;
    const int len = int(rng() % 24);
    for (int k = 0; k < len; ++k) text += utf8(alphabet[rng() % alphabet.size()]);
    ASSERT_EQ(hand_split(text), regex_split(text)) << "iteration " << iter;
  }
}

// PCRE2's UCP \s holds U+180E (Mongolian vowel separator); Unicode White_Space, tiktoken and
// Hugging Face do not. The ids below are tiktoken 0.14's, with Meta's tokenizer.model.
TEST(Pretokenize, MongolianVowelSeparatorIsNotWhitespace) {
  EXPECT_EQ(hand_split("a \u180E b"), (std::vector<std::string>{"a", " \u180E", " b"}));
  EXPECT_EQ(encode(llama3(), "a\u180Eb"), (std::vector<int32_t>{64, 157, 254, 236, 65}));
  EXPECT_EQ(encode(llama3(), "a \u180E b"), (std::vector<int32_t>{64, 87189, 254, 236, 293}));
  EXPECT_EQ(encode(llama3(), "\u180E\u180E  x"), (std::vector<int32_t>{157, 254, 236, 157, 254, 236, 220, 865}));
  EXPECT_EQ(encode(llama3(), "a\u00A0\u180E b"), (std::vector<int32_t>{64, 4194, 157, 254, 236, 293}));
  // The gotcha itself: raw PCRE2 \s would have split differently.
  EXPECT_EQ(herd::tok::with_unicode_white_space(R"(\s+(?!\S))").find("\\s"), std::string::npos);
}

bool pcre2_full_match(pcre2_code* re, pcre2_match_data* md, const std::string& s) {
  return pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, 0, md, nullptr) >= 0;
}

TEST(Pretokenize, UnicodeTablesEqualPcre2) {
  int err;
  PCRE2_SIZE off;
  auto compile = [&](const char* p) {
    pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p), PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &err, &off, nullptr);
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
  };
  pcre2_code* letter = compile(R"(\p{L})");
  pcre2_code* number = compile(R"(\p{N})");
  pcre2_code* space = compile(R"(\s)");
  pcre2_match_data* md = pcre2_match_data_create(4, nullptr);
  int n_mismatch = 0;
  for (uint32_t cp = 0; cp < 0x110000; ++cp) {
    if (cp >= 0xD800 && cp < 0xE000) continue;
    const std::string s = utf8(cp);
    const CharClass c = herd::tok::char_class(cp);
    const bool ws = c == CharClass::space || c == CharClass::newline;
    const bool ok = pcre2_full_match(letter, md, s) == (c == CharClass::letter) &&
                    pcre2_full_match(number, md, s) == (c == CharClass::number) &&
                    (cp == 0x180E || pcre2_full_match(space, md, s) == ws);
    if (!ok && n_mismatch++ < 10) ADD_FAILURE() << "code point " << std::hex << cp;
  }
  EXPECT_EQ(n_mismatch, 0);
  EXPECT_EQ(herd::tok::char_class(0x180E), CharClass::other);
  pcre2_match_data_free(md);
  for (pcre2_code* re : {letter, number, space}) pcre2_code_free(re);
}

TEST(Pretokenize, InvalidUtf8BytesAreOtherCharacters) {
  EXPECT_EQ(hand_split("ab\xFF\xFEx"), (std::vector<std::string>{"ab", "\xFF\xFE", "x"}));
  EXPECT_EQ(hand_split("\xE2\x82"), (std::vector<std::string>{"\xE2\x82"}));
  EXPECT_EQ(hand_split(" \xC0\xAF"), (std::vector<std::string>{" \xC0\xAF"}));
}

}  // namespace
}  // namespace herd_test
