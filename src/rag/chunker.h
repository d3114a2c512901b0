// A document's lines split into passages for retrieval: a passage never crosses a section start
// (a heading), ends at a paragraph break (a blank line) when it can, and stays within a budget
// counted by the caller's function (words by default, the model's tokens when it has one).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "rag/text-extract.h"

namespace herd::rag {

struct Chunk {
  int64_t line_begin = 0, line_end = 0;  // 1-based, inclusive
  std::string text;
};

using CountFn = std::function<int64_t(std::string_view)>;

// Whitespace-separated words.
int64_t count_words(std::string_view text);

// Paragraphs are packed greedily up to `budget`; a paragraph over the budget is split between its
// lines, and a line over it between its words (those pieces share the line's number). Passages
// with no text are left out.
std::vector<Chunk> split_passages(const Document& doc, int64_t budget, const CountFn& count);

}  // namespace herd::rag
