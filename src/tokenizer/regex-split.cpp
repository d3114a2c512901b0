#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex-split.h"

#include <pcre2.h>

#include "common/check.h"

namespace herd::tok {

const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {
constexpr std::string_view kWhiteSpaceClassBody =
    R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
}  // namespace

std::string with_unicode_white_space(std::string_view pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpaceClassBody) : str_cat("[", kWhiteSpaceClassBody, "]");
      } else if (e == 'S') {
        HERD_REQUIRE(!in_class, "split pattern: \\S inside a character class is not supported");
        out += str_cat("[^", kWhiteSpaceClassBody, "]");
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

struct RegexSplitter::Impl {
  pcre2_code* code = nullptr;
  pcre2_match_data* match = nullptr;
  ~Impl() {
    pcre2_match_data_free(match);
    pcre2_code_free(code);
  }
};

RegexSplitter::RegexSplitter(std::string_view pattern) : impl_(std::make_unique<Impl>()) {
  const std::string translated = with_unicode_white_space(pattern);
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                              PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail_input("split pattern does not compile at offset ", err_offset, ": ", reinterpret_cast<char*>(msg));
  }
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter on failure
  impl_->match = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  HERD_CHECK(impl_->match != nullptr);
}

RegexSplitter::~RegexSplitter() = default;

void RegexSplitter::split(std::string_view text, std::vector<std::string_view>& out) const {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t emitted = 0, search = 0;
  while (search < text.size()) {
    const int rc = pcre2_match(impl_->code, subject, text.size(), search, 0, impl_->match, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    HERD_REQUIRE(rc >= 0, "split pattern failed on the input (PCRE2 error ", rc, "; is it valid UTF-8?)");
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(impl_->match);
    if (ov[1] == ov[0]) {  // an empty match splits nothing: search again one character on
      search = ov[0] + 1;
      while (search < text.size() && (static_cast<uint8_t>(text[search]) & 0xC0) == 0x80) ++search;
      continue;
    }
    if (ov[0] > emitted) out.push_back(text.substr(emitted, ov[0] - emitted));
    out.push_back(text.substr(ov[0], ov[1] - ov[0]));
    emitted = search = ov[1];
  }
  if (emitted < text.size()) out.push_back(text.substr(emitted));
}

}  // namespace herd::tok
