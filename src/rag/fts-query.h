// User text as FTS5 queries that can never be a syntax error or an injection: the text's words,
// each one quoted, joined by OR; and the whole word sequence as one quoted phrase, so that the
// search can put passages holding the exact phrase above those holding its words apart.
#pragma once

#include <string>
#include <string_view>

namespace herd::rag {

constexpr size_t kMaxQueryTerms = 32;  // words beyond these are ignored
constexpr size_t kMaxTermBytes = 64;   // a longer word is cut (at a character boundary)

struct FtsQuery {
  std::string any;     // "" when the text holds no word
  std::string phrase;  // the words in order as one phrase
};

// Words are runs of ASCII letters, digits and '_', and of non-ASCII characters; common English
// words ("the", "what") are left out of the OR terms unless nothing else is left, and kept in
// the phrase.
FtsQuery fts_query(std::string_view text);

}  // namespace herd::rag
