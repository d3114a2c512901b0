// JSON written the way transformers' chat-template `tojson` writes it: Python's json.dumps with
// ensure_ascii=False, keys in insertion order, ", " and ": " separators (with indent: "," and a
// newline). The golden prompts depend on every one of these bytes.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace herd::chat {

using Json = nlohmann::ordered_json;

// indent < 0: one line; otherwise that many spaces per level. A value nested deeper than any
// parser in herd accepts (kMaxJsonDepth) is invalid input: writing it recurses once per level.
std::string py_json_dumps(const Json& value, int indent = -1);

// The same, appended to out; false, with out cut short, as soon as out grows past max_bytes
// (indentation makes the text grow with nesting depth times the number of lines).
bool py_json_dumps_to(const Json& value, int indent, size_t max_bytes, std::string& out);

// How Jinja prints a scalar with {{ x }} (Python str()): True, False, None, 22.0.
std::string py_str(const Json& scalar);

}  // namespace herd::chat
