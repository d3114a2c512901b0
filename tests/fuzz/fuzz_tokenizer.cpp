// libFuzzer target for the tokenizer. On arbitrary bytes: nothing crashes, decode(encode(x))
// == x with and without special tokens, the streaming decoder concatenates to the same bytes;
// on valid UTF-8 the hand-written Llama 3 splitter equals PCRE2 running the pattern.
// Needs HERD_TEST_DATA (tests/data) at compile time for Meta's tokenizer.model.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/detokenize.h"
#include "tokenizer/model.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/regex-split.h"
#include "tokenizer/unicode.h"

namespace {

const herd::tok::Model& model() {
  static const auto m = herd::tok::load_model(HERD_TEST_DATA "/tokenizer/tokenizer.model");
  return *m;
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  for (size_t i = 0; i < s.size();) {
    const auto c = herd::tok::decode_utf8(p + i, s.size() - i);
    if (c.cp == herd::tok::kInvalidCodePoint) return false;
    i += c.len;
  }
  return true;
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (bool allow_special : {false, true}) {
    std::vector<int32_t> ids;
    model().encode(text, allow_special, ids);
    check(herd::tok::decode(model(), ids) == text);
    herd::tok::StreamDecoder stream(model());
    std::string joined;
    for (int32_t id : ids) joined += stream.push(id);
    check(joined + stream.flush() == text);
  }
  if (valid_utf8(text)) {
    static const herd::tok::RegexSplitter regex(herd::tok::kLlama3Pattern);
    std::vector<std::string_view> expected;
    regex.split(text, expected);
    size_t pos = 0;
    for (std::string_view piece : expected) {
      const size_t end = herd::tok::llama3_piece_end(text, pos);
      check(text.substr(pos, end - pos) == piece);
      pos = end;
    }
    check(pos == text.size());
  }
  return 0;
}
