// JSON written the way transformers' chat-template `tojson` writes it: Python's json.dumps with
// ensure_ascii=False, keys in insertion order, ", " and ": " separators (with indent: "," and a
// newline). The golden prompts depend on every one of these bytes.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace herd::chat {

using Json = nlohmann::ordered_json;

// indent < 0: one line; otherwise that many spaces per level.
std::string py_json_dumps(const Json& value, int indent = -1);

// How Jinja prints a scalar with {{ x }} (Python str()): True, False, None, 22.0.
std::string py_str(const Json& scalar);

}  // namespace herd::chat
