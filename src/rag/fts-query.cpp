// User text as a safe FTS5 query (fts-query.h).
#include "rag/fts-query.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "rag/text-extract.h"

namespace herd::rag {
namespace {

bool word_byte(unsigned char c) { return c >= 0x80 || std::isalnum(c) || c == '_'; }

bool stop_word(const std::string& w) {
  static const char* const kStop[] = {"a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for",
                                      "from", "how", "in", "is", "it", "its", "of", "on", "or", "that", "the",
                                      "this", "to", "was", "were", "what", "when", "where", "which", "who", "why",
                                      "with"};
  return std::find_if(std::begin(kStop), std::end(kStop), [&](const char* s) { return w == s; }) != std::end(kStop);
}

// An FTS5 string: double quotes, inner quotes doubled (words hold none, but nothing relies on it).
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

FtsQuery fts_query(std::string_view raw) {
  const std::string text = valid_utf8(raw);
  std::vector<std::string> words;
  for (size_t i = 0; i < text.size() && words.size() < kMaxQueryTerms;) {
    if (!word_byte(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && word_byte(static_cast<unsigned char>(text[j]))) ++j;
    size_t len = std::min(j - i, kMaxTermBytes);
    while (len > 0 && len < j - i && (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80) --len;
    std::string w = text.substr(i, len);
    for (char& c : w) c = char(std::tolower(static_cast<unsigned char>(c)));
    words.push_back(std::move(w));
    i = j;
  }
  if (words.empty()) return {};
  std::vector<std::string> terms;
  for (const std::string& w : words)
    if (!stop_word(w) && std::find(terms.begin(), terms.end(), w) == terms.end()) terms.push_back(w);
  if (terms.empty())
    for (const std::string& w : words)
      if (std::find(terms.begin(), terms.end(), w) == terms.end()) terms.push_back(w);
  FtsQuery q;
  for (const std::string& t : terms) {
    if (!q.any.empty()) q.any += " OR ";
    q.any += quoted(t);
  }
  std::string phrase;
  for (const std::string& w : words) {
    if (!phrase.empty()) phrase += ' ';
    phrase += w;
  }
  q.phrase = quoted(phrase);
  return q;
}

}  // namespace herd::rag
