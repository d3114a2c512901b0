// Round trips and the streaming detokenizer.
#include <random>

#include "tokenizer-fixture.h"

namespace herd_test {
namespace {

// An independent UTF-8 validity check (RFC 3629), not the library's.
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return false;
    i += n;
  }
  return true;
}

std::vector<std::string> test_strings() {
  std::vector<std::string> out;
  for (const Vector& v : load_vectors()) out.push_back(v.text);
  for (const Vector& v : load_llamacpp_vectors()) out.push_back(v.text);
  return out;
}

std::vector<std::string> random_byte_strings() {
  std::mt19937 rng(42);
  std::vector<std::string> out;
  for (int i = 0; i < 3000; ++i) {
    std::string s(rng() % 64, '\0');
    // Half fully random, half mostly ASCII with some high bytes, so both regimes occur.
    for (char& c : s) c = char(i % 2 ? rng() : (rng() % 8 ? 0x20 + rng() % 0x5F : 0x80 + rng() % 0x80));
    out.push_back(s);
  }
  return out;
}

TEST(TokenizerDecode, RoundTripOnTestStrings) {
  for (const std::string& s : test_strings()) {
    EXPECT_EQ(decode(llama3(), encode(llama3(), s)), s);
    EXPECT_EQ(decode(llama3(), encode(llama3(), s, true)), s);
  }
}

TEST(TokenizerDecode, RoundTripOnRandomBytes) {
  for (const std::string& s : random_byte_strings()) ASSERT_EQ(decode(llama3(), encode(llama3(), s)), s);
}

TEST(TokenizerDecode, UnknownIdIsBadInput) {
  std::string out;
  for (int32_t id : {-1, 128256, 1 << 30}) {
    const herd::Status s = llama3().decode({9906, id}, &out);
    EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
    EXPECT_NE(s.message().find(std::to_string(id)), std::string::npos) << s.message();
  }
}

// docs/llama31.md, "tokenizer.model": 1,352 tokens are not valid UTF-8 on their own.
TEST(TokenizerDecode, PartialCharacterTokens) {
  int n_partial = 0;
  for (int32_t id = 0; id < 128000; ++id) n_partial += !valid_utf8(decode(llama3(), {id}));
  EXPECT_EQ(n_partial, 1352);
}

std::vector<std::string> stream(const std::vector<int32_t>& ids, std::string& tail) {
  herd::TokenStream st(llama3());
  std::vector<std::string> deltas;
  for (int32_t id : ids) {
    std::string d;
    EXPECT_TRUE(st.push(id, &d));
    deltas.push_back(d);
  }
  st.flush(&tail);
  return deltas;
}

TEST(TokenizerDecode, StreamingNeverSplitsACharacter) {
  int n_held = 0;
  for (const std::string& s : test_strings()) {
    const auto ids = encode(llama3(), s);
    std::string tail, joined;
    for (const std::string& d : stream(ids, tail)) {
      EXPECT_TRUE(valid_utf8(d)) << s;  // valid input: every delta is whole characters
      n_held += d.empty();
      joined += d;
    }
    EXPECT_EQ(tail, "");
    EXPECT_EQ(joined, s);
  }
  EXPECT_GT(n_held, 0);  // the vectors do hold characters split across tokens
}

TEST(TokenizerDecode, StreamingFlushesAtTheEnd) {
  const std::string smile = "\xF0\x9F\x98\x80";  // U+1F600
  const auto ids = encode(llama3(), smile + smile);
  std::vector<int32_t> cut(ids.begin(), ids.end());
  // Drop tokens until the text ends inside a character; flush must return the rest.
  for (; !cut.empty(); cut.pop_back()) {
    const std::string full = decode(llama3(), cut);
    std::string tail, joined;
    for (const std::string& d : stream(cut, tail)) joined += d;
    EXPECT_EQ(joined + tail, full);
    EXPECT_EQ(tail.empty(), valid_utf8(full));
  }
}

TEST(TokenizerDecode, StreamingOnRandomBytesConcatenatesToDecode) {
  for (const std::string& s : random_byte_strings()) {
    std::string tail, joined;
    for (const std::string& d : stream(encode(llama3(), s), tail)) joined += d;
    ASSERT_EQ(joined + tail, s);
    ASSERT_LE(tail.size(), 3u);
  }
}

TEST(TokenizerDecode, SpecialTokensDecodeAsText) {
  EXPECT_EQ(decode(llama3(), {128000, 9906, 128009}), "<|begin_of_text|>Hello<|eot_id|>");
}

}  // namespace
}  // namespace herd_test
