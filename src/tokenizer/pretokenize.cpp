#include "tokenizer/pretokenize.h"

#include <array>
#include <cstdint>

#include "tokenizer/unicode.h"

namespace herd::tok {
namespace {

constexpr std::array<CharClass, 128> kAsciiClass = [] {
  std::array<CharClass, 128> t{};
  for (int c = 0; c < 128; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) t[c] = CharClass::letter;
    else if (c >= '0' && c <= '9') t[c] = CharClass::number;
    else if (c == '\r' || c == '\n') t[c] = CharClass::newline;
    else if (c == ' ' || (c >= '\t' && c <= '\f')) t[c] = CharClass::space;
    else t[c] = CharClass::other;
  }
  return t;
}();

struct Char {
  CharClass cls;
  uint32_t len;
};

// A cursor over the text; past the end every character reads as {other, 0}, never matched.
class Text {
 public:
  explicit Text(std::string_view t) : s_(reinterpret_cast<const uint8_t*>(t.data())), n_(t.size()) {}
  size_t size() const { return n_; }

  Char at(size_t i) const {
    if (i >= n_) return {CharClass::other, 0};
    if (s_[i] < 0x80) return {kAsciiClass[s_[i]], 1};
    const DecodedChar d = decode_utf8(s_ + i, n_ - i);
    return {char_class(d.cp), d.len};
  }
  bool is(size_t i, CharClass cls) const { return i < n_ && at(i).cls == cls; }

  // End of the run of characters of class `cls` that starts at i.
  size_t skip(size_t i, CharClass cls) const {
    for (Char c; i < n_ && (c = at(i)).cls == cls;) i += c.len;
    return i;
  }

  // Length of a contraction suffix (s t re ve m ll d, any case) at i, 0 if none. Case
  // folding as the regex engines do it: U+017F (long s) folds to 's'.
  size_t contraction_len(size_t i) const {
    auto lower = [&](size_t k) -> int { return k < n_ ? (s_[k] | 0x20) : 0; };
    switch (lower(i)) {
      case 's': case 't': case 'm': case 'd': return 1;
      case 'r': return lower(i + 1) == 'e' ? 2 : 0;
      case 'v': return lower(i + 1) == 'e' ? 2 : 0;
      case 'l': return lower(i + 1) == 'l' ? 2 : 0;
      default: break;
    }
    if (i + 1 < n_ && s_[i] == 0xC5 && s_[i + 1] == 0xBF) return 2;  // U+017F
    return 0;
  }

 private:
  const uint8_t* s_;
  size_t n_;
};

bool is_space(CharClass c) { return c == CharClass::space || c == CharClass::newline; }

}  // namespace

size_t llama3_piece_end(std::string_view text, size_t pos) {
  const Text t(text);
  const Char c = t.at(pos);
  const size_t next = pos + c.len;

  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (text[pos] == '\'')
    if (size_t k = t.contraction_len(next)) return next + k;

  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c.cls == CharClass::letter) return t.skip(next, CharClass::letter);
  if (c.cls != CharClass::newline && c.cls != CharClass::number && t.is(next, CharClass::letter))
    return t.skip(next, CharClass::letter);

  // \p{N}{1,3}
  if (c.cls == CharClass::number) {
    size_t end = next;
    for (int k = 0; k < 2 && t.is(end, CharClass::number); ++k) end += t.at(end).len;
    return end;
  }

  // ' '?[^\s\p{L}\p{N}]+[\r\n]*
  const size_t punct = (text[pos] == ' ' && t.is(next, CharClass::other)) ? next : pos;
  if (t.is(punct, CharClass::other))
    return t.skip(t.skip(punct, CharClass::other), CharClass::newline);

  // Whitespace from here on. \s*[\r\n]+ ends at the run's last CR/LF; otherwise \s+(?!\S)
  // leaves the run's last character to the next piece when a non-space follows; \s+ takes a
  // lone space.
  size_t end = pos, last_start = pos, after_newline = 0;
  for (Char w; end < t.size() && is_space((w = t.at(end)).cls);) {
    last_start = end;
    end += w.len;
    if (w.cls == CharClass::newline) after_newline = end;
  }
  if (after_newline) return after_newline;
  if (end == t.size() || last_start == pos) return end;
  return last_start;
}

}  // namespace herd::tok
