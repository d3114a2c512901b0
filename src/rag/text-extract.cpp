// From a file's bytes to lines of plain text (text-extract.h).
#include "rag/text-extract.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

namespace herd::rag {
namespace {

// The length of the valid UTF-8 sequence at s[i], or 0 (overlong forms and surrogates included).
size_t utf8_length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  if (c == 0xE0 && b(i + 1) < 0xA0) return 0;  // overlong
  if (c == 0xED && b(i + 1) >= 0xA0) return 0;  // surrogate
  if (c == 0xF0 && b(i + 1) < 0x90) return 0;  // overlong
  if (c == 0xF4 && b(i + 1) >= 0x90) return 0;  // beyond U+10FFFF
  return n;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ends_with_any(std::string_view s, std::initializer_list<std::string_view> suffixes) {
  const std::string l = lower(s);
  return std::any_of(suffixes.begin(), suffixes.end(), [&](std::string_view x) { return l.ends_with(x); });
}

void append_utf8(std::string* out, uint32_t cp) {
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  if (cp < 0x80) {
    out->push_back(char(cp));
  } else if (cp < 0x800) {
    out->push_back(char(0xC0 | (cp >> 6)));
    out->push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(char(0xE0 | (cp >> 12)));
    out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(char(0xF0 | (cp >> 18)));
    out->push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(char(0x80 | (cp & 0x3F)));
  }
}

// The entity at html[i] ('&'): appends its text and returns its length, or 0 when it is none we know.
size_t decode_entity(std::string_view html, size_t i, std::string* out) {
  const size_t semi = html.find(';', i);
  if (semi == std::string_view::npos || semi - i > 10) return 0;
  const std::string_view name = html.substr(i + 1, semi - i - 1);
  if (name.size() > 1 && name[0] == '#') {
    const bool hex = name[1] == 'x' || name[1] == 'X';
    const std::string_view digits = name.substr(hex ? 2 : 1);
    if (digits.empty() || digits.size() > 7) return 0;
    uint32_t cp = 0;
    for (char c : digits) {
      const int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                    : hex && std::isxdigit(static_cast<unsigned char>(c)) ? std::tolower(c) - 'a' + 10
                                                                          : -1;
      if (d < 0) return 0;
      cp = cp * (hex ? 16 : 10) + uint32_t(d);
    }
    append_utf8(out, cp);
    return semi - i + 1;
  }
  static const std::pair<std::string_view, uint32_t> kNamed[] = {
      {"amp", '&'},      {"lt", '<'},        {"gt", '>'},        {"quot", '"'},      {"apos", '\''},
      {"nbsp", ' '},    {"mdash", 0x2014},  {"ndash", 0x2013},  {"hellip", 0x2026}, {"copy", 0xA9},
      {"reg", 0xAE},     {"lsquo", 0x2018},  {"rsquo", 0x2019},  {"ldquo", 0x201C},  {"rdquo", 0x201D},
      {"laquo", 0xAB},   {"raquo", 0xBB},    {"middot", 0xB7},   {"bull", 0x2022},   {"trade", 0x2122}};
  for (const auto& [n, cp] : kNamed)
    if (name == n) {
      append_utf8(out, cp);
      return semi - i + 1;
    }
  return 0;
}

// Tags after which words must not run together: they become one space.
bool is_block_tag(std::string_view name) {
  static const std::string_view kBlock[] = {"p", "div", "br", "li", "td", "th", "tr", "ul", "ol", "table",
                                             "section", "article", "header", "footer", "nav", "pre", "blockquote",
                                             "hr", "title", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6"};
  return std::find(std::begin(kBlock), std::end(kBlock), name) != std::end(kBlock);
}

// Skips to the end of `s`'s match at or after i, keeping the newlines it passes over.
size_t skip_to(std::string_view html, size_t i, std::string_view end, bool case_insensitive, std::string* out) {
  size_t j = i;
  while (j < html.size()) {
    if (html[j] == '\n') out->push_back('\n');
    if (j + end.size() <= html.size() &&
        (case_insensitive ? lower(html.substr(j, end.size())) == end : html.substr(j, end.size()) == end))
      return j + end.size();
    ++j;
  }
  return j;
}

}  // namespace

bool looks_binary(std::string_view bytes) {
  if (bytes.find('\0') != std::string_view::npos) return true;
  size_t invalid = 0;
  for (size_t i = 0; i < bytes.size();) {
    const size_t n = utf8_length(bytes, i);
    if (n == 0) ++invalid;
    i += n ? n : 1;
  }
  return invalid * 20 > bytes.size();
}

std::string valid_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    const size_t n = utf8_length(bytes, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  return out;
}

DocKind kind_of(std::string_view path, std::string_view text) {
  if (ends_with_any(path, {".html", ".htm", ".xhtml"})) return DocKind::html;
  if (ends_with_any(path, {".md", ".markdown"})) return DocKind::markdown;
  const size_t start = text.find_first_not_of(" \t\r\n\xEF\xBB\xBF");
  const std::string head = start == std::string_view::npos ? "" : lower(text.substr(start, 15));
  if (head.starts_with("<!doctype html") || head.starts_with("<html")) return DocKind::html;
  return DocKind::text;
}

std::string strip_html(std::string_view html, std::vector<bool>* heading_lines) {
  std::string out;
  out.reserve(html.size());
  size_t line = 0, counted = 0;  // newlines in out[0, counted)
  const auto mark_heading = [&] {
    line += size_t(std::count(out.begin() + std::ptrdiff_t(counted), out.end(), '\n'));
    counted = out.size();
    if (heading_lines->size() <= line) heading_lines->resize(line + 1, false);
    (*heading_lines)[line] = true;
  };
  for (size_t i = 0; i < html.size();) {
    const char c = html[i];
    if (c == '&') {
      const size_t n = decode_entity(html, i, &out);
      if (n == 0) out.push_back('&');
      i += n ? n : 1;
      continue;
    }
    if (c != '<') {
      out.push_back(c);
      ++i;
      continue;
    }
    if (html.substr(i, 4) == "<!--") {
      i = skip_to(html, i + 4, "-->", false, &out);
      continue;
    }
    // A tag: its name, then everything to the '>' that is not inside a quoted attribute.
    size_t j = i + 1;
    const bool closing = j < html.size() && html[j] == '/';
    if (closing) ++j;
    const size_t name_start = j;
    while (j < html.size() && (std::isalnum(static_cast<unsigned char>(html[j])) || html[j] == '-')) ++j;
    const std::string name = lower(html.substr(name_start, j - name_start));
    if (name.empty() && !(j < html.size() && (html[j] == '!' || html[j] == '?'))) {
      out.push_back('<');  // a lone '<' in text
      ++i;
      continue;
    }
    char quote = 0;
    for (; j < html.size(); ++j) {
      if (html[j] == '\n') out.push_back('\n');
      if (quote) {
        if (html[j] == quote) quote = 0;
      } else if (html[j] == '"' || html[j] == '\'') {
        quote = html[j];
      } else if (html[j] == '>') {
        break;
      }
    }
    i = std::min(j + 1, html.size());
    if (!closing && (name == "script" || name == "style")) {
      i = skip_to(html, i, "</" + name, true, &out);
      i = std::min(html.find('>', i) == std::string_view::npos ? html.size() : html.find('>', i) + 1, html.size());
      continue;
    }
    if (!closing && name.size() == 2 && name[0] == 'h' && name[1] >= '1' && name[1] <= '6') mark_heading();
    if (is_block_tag(name) && !out.empty() && out.back() != ' ' && out.back() != '\n') out.push_back(' ');
  }
  return out;
}

Document extract(std::string_view text, DocKind kind) {
  Document doc;
  std::string stripped;
  if (kind == DocKind::html) {
    stripped = strip_html(text, &doc.heading);
    text = stripped;
  }
  bool in_fence = false;
  for (size_t start = 0; start <= text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    doc.lines.emplace_back(line);
    if (start == text.size() || end == text.size()) break;
    start = end + 1;
  }
  if (!doc.lines.empty() && doc.lines.back().empty() && !text.empty() && text.back() == '\n') doc.lines.pop_back();
  doc.heading.resize(doc.lines.size(), false);
  if (kind == DocKind::markdown) {
    for (size_t i = 0; i < doc.lines.size(); ++i) {
      const std::string& l = doc.lines[i];
      const size_t indent = l.find_first_not_of(' ');
      if (indent == std::string::npos || indent > 3) continue;
      const std::string_view body = std::string_view(l).substr(indent);
      if (body.starts_with("```") || body.starts_with("~~~")) in_fence = !in_fence;
      if (in_fence) continue;
      const size_t hashes = body.find_first_not_of('#');
      if (hashes >= 1 && hashes <= 6 && (hashes == body.size() || body[hashes] == ' ')) doc.heading[i] = true;
    }
  }
  return doc;
}

}  // namespace herd::rag
