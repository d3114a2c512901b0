#include "chat/py-literal.h"

#include <charconv>
#include <string>

#include "common/json-limits.h"

namespace herd::chat {
namespace {

// Deeper nesting is refused rather than risking the stack; with the object of keyword arguments
// around it, a value stays within the limit every JSON value in herd keeps.
constexpr int kMaxDepth = kMaxJsonDepth - 2;

bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_ident_char(char c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }

void append_utf8(std::string& out, uint32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xc0 | (c >> 6));
    out += char(0x80 | (c & 0x3f));
  } else if (c < 0x10000) {
    out += char(0xe0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3f));
    out += char(0x80 | (c & 0x3f));
  } else {
    out += char(0xf0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3f));
    out += char(0x80 | ((c >> 6) & 0x3f));
    out += char(0x80 | (c & 0x3f));
  }
}

PyParse parse_hex(std::string_view text, size_t& pos, size_t n_digits, uint32_t& out) {
  if (pos + n_digits > text.size()) return PyParse::incomplete;
  auto [p, ec] = std::from_chars(text.data() + pos, text.data() + pos + n_digits, out, 16);
  if (ec != std::errc() || p != text.data() + pos + n_digits || out > 0x10ffff) return PyParse::bad;
  pos += n_digits;
  return PyParse::ok;
}

// A Python string literal with its escapes; a raw newline ends it badly, as in Python.
PyParse parse_string(std::string_view text, size_t& pos, std::string& out) {
  const char quote = text[pos++];
  while (pos < text.size()) {
    const char c = text[pos++];
    if (c == quote) return PyParse::ok;
    if (c == '\n') return PyParse::bad;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (pos >= text.size()) return PyParse::incomplete;
    const char e = text[pos++];
    uint32_t code = 0;
    switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'v': out += '\v'; break;
      case 'a': out += '\a'; break;
      case '0': out += '\0'; break;
      case '\n': break;  // a line continuation
      case '\\': case '\'': case '"': out += e; break;
      case 'x': case 'u': case 'U':
        if (PyParse r = parse_hex(text, pos, e == 'x' ? 2 : e == 'u' ? 4 : 8, code); r != PyParse::ok) return r;
        append_utf8(out, code);
        break;
      default:  // Python keeps an unknown escape as written
        out += '\\';
        out += e;
    }
  }
  return PyParse::incomplete;
}

PyParse parse_number(std::string_view text, size_t& pos, Json& out) {
  const size_t begin = pos;
  if (text[pos] == '-' || text[pos] == '+') ++pos;
  bool is_float = false, digits = false;
  while (pos < text.size()) {
    const char c = text[pos];
    if (c >= '0' && c <= '9') {
      digits = true;
    } else if (c == '.' || c == 'e' || c == 'E') {
      is_float = true;
    } else if ((c == '-' || c == '+') && (text[pos - 1] == 'e' || text[pos - 1] == 'E')) {
    } else {
      break;
    }
    ++pos;
  }
  if (pos == text.size()) return PyParse::incomplete;  // more digits may follow
  if (!digits) return PyParse::bad;
  std::string s(text.substr(begin, pos - begin));
  if (s[0] == '+') s.erase(0, 1);
  if (!is_float) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size()) {
      out = v;
      return PyParse::ok;
    }
  }
  double d = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || p != s.data() + s.size()) return PyParse::bad;
  out = d;
  return PyParse::ok;
}

PyParse parse_value(std::string_view text, size_t& pos, Json& out, int depth);

// The items of a dict or list after its opening bracket, up to and including `close`.
PyParse parse_items(std::string_view text, size_t& pos, Json& out, char close, int depth) {
  const bool dict = close == '}';
  out = dict ? Json::object() : Json::array();
  while (true) {
    pos = skip_py_space(text, pos);
    if (pos >= text.size()) return PyParse::incomplete;
    if (text[pos] == close) {
      ++pos;
      return PyParse::ok;
    }
    Json key, value;
    if (PyParse r = parse_value(text, pos, dict ? key : value, depth + 1); r != PyParse::ok) return r;
    if (dict) {
      if (!key.is_string()) return PyParse::bad;  // JSON objects have string keys only
      pos = skip_py_space(text, pos);
      if (pos >= text.size()) return PyParse::incomplete;
      if (text[pos++] != ':') return PyParse::bad;
      pos = skip_py_space(text, pos);
      if (PyParse r = parse_value(text, pos, value, depth + 1); r != PyParse::ok) return r;
      out[key.get<std::string>()] = std::move(value);
    } else {
      out.push_back(std::move(value));
    }
    pos = skip_py_space(text, pos);
    if (pos >= text.size()) return PyParse::incomplete;
    if (text[pos] == ',') ++pos;
    else if (text[pos] != close) return PyParse::bad;
  }
}

PyParse parse_value(std::string_view text, size_t& pos, Json& out, int depth) {
  if (depth > kMaxDepth) return PyParse::too_deep;
  if (pos >= text.size()) return PyParse::incomplete;
  const char c = text[pos];
  if (c == '\'' || c == '"') {
    std::string s;
    PyParse r = parse_string(text, pos, s);
    out = std::move(s);
    return r;
  }
  if (c == '{' || c == '[') {
    ++pos;
    return parse_items(text, pos, out, c == '{' ? '}' : ']', depth);
  }
  if (c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9')) return parse_number(text, pos, out);
  const size_t end = scan_identifier(text, pos);
  if (end == text.size()) return PyParse::incomplete;
  const std::string_view word = text.substr(pos, end - pos);
  if (word == "True") out = true;
  else if (word == "False") out = false;
  else if (word == "None") out = nullptr;
  else return PyParse::bad;  // a variable or an expression: not a literal
  pos = end;
  return PyParse::ok;
}

}  // namespace

size_t skip_py_space(std::string_view text, size_t pos) {
  while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' || text[pos] == '\r'))
    ++pos;
  return pos;
}

size_t scan_identifier(std::string_view text, size_t pos, bool with_dash) {
  if (pos >= text.size() || !is_ident_start(text[pos])) return pos;
  size_t end = pos + 1;
  while (end < text.size() && (is_ident_char(text[end]) || (with_dash && text[end] == '-'))) ++end;
  return end;
}

PyParse parse_py_literal(std::string_view text, size_t& pos, Json& out) { return parse_value(text, pos, out, 0); }

PyParse parse_py_kwargs(std::string_view text, size_t& pos, Json& out) {
  out = Json::object();
  while (true) {
    pos = skip_py_space(text, pos);
    if (pos >= text.size()) return PyParse::incomplete;
    if (text[pos] == ')') {
      ++pos;
      return PyParse::ok;
    }
    const size_t name_end = scan_identifier(text, pos);
    if (name_end == pos) return PyParse::bad;  // a positional argument
    const std::string name(text.substr(pos, name_end - pos));
    pos = skip_py_space(text, name_end);
    if (pos >= text.size()) return PyParse::incomplete;
    if (text[pos++] != '=') return PyParse::bad;
    pos = skip_py_space(text, pos);
    Json value;
    if (PyParse r = parse_py_literal(text, pos, value); r != PyParse::ok) return r;
    out[name] = std::move(value);
    pos = skip_py_space(text, pos);
    if (pos >= text.size()) return PyParse::incomplete;
    if (text[pos] == ',') ++pos;
    else if (text[pos] != ')') return PyParse::bad;
  }
}

}  // namespace herd::chat
