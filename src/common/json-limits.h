// JSON parsing with a nesting limit. nlohmann's parser itself is iterative, but every consumer
// that walks the result (dump, the destructor of older versions, our own recursive readers) recurses
// once per level, so a hostile file nested 100,000 deep overflows the stack. Every parser of
// untrusted JSON in herd goes through parse_json_limited; nothing legitimate nests this deep.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/check.h"

namespace herd {

// Deeper than any config, tokenizer, conversation, tool schema or tool call herd reads.
inline constexpr int kMaxJsonDepth = 128;

// Thrown from the parser callback to stop at the first level past the limit.
struct JsonTooDeep {};

// The parsed value, or nullopt for malformed JSON (the caller words that error); a document nested
// deeper than max_depth fails with one invalid-input line naming `what` and the limit.
template <typename Json = nlohmann::json>
std::optional<Json> parse_json_limited(std::string_view text, const std::string& what,
                                       int max_depth = kMaxJsonDepth) {
  const auto limit = [max_depth](int depth, typename Json::parse_event_t, Json&) {
    if (depth > max_depth) throw JsonTooDeep{};
    return true;
  };
  try {
    Json j = Json::parse(text.begin(), text.end(), limit, /*allow_exceptions=*/false);
    if (j.is_discarded()) return std::nullopt;
    return j;
  } catch (const JsonTooDeep&) {
    fail_input(what, ": JSON nested deeper than ", max_depth, " levels");
  }
}

// Depth of a value built in memory (tool arguments a caller constructed): for code that recurses
// over a value it did not parse itself. Iterative, so it is safe on any depth.
template <typename Json>
int json_depth(const Json& root) {
  int deepest = 0;
  std::vector<std::pair<const Json*, int>> todo{{&root, 1}};
  while (!todo.empty()) {
    auto [v, d] = todo.back();
    todo.pop_back();
    deepest = std::max(deepest, d);
    if (v->is_structured())
      for (const auto& child : *v) todo.emplace_back(&child, d + 1);
  }
  return deepest;
}

}  // namespace herd
