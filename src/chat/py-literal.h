// The small part of Python that models write inside tool calls: literals ('str', "str", 42,
// 3.14, True, False, None, {...}, [...]) and keyword arguments (`a=1, b="x")`). Used for
// built-in calls (brave_search.call(query="...")), Llama 3.2-style lists ([f(a=1)]) and
// single-quoted <function> arguments. Nothing here evaluates code.
#pragma once

#include <cstddef>
#include <string_view>

#include "chat/py-json.h"

namespace herd::chat {

enum class PyParse {
  ok,
  incomplete,  // the text ended inside the value: cut off, or still being generated
  bad,         // not a literal (a bare name, a positional argument, a syntax error)
  too_deep,    // nested deeper than the JSON limit (kMaxJsonDepth, with the arguments object)
};

// Parses one literal starting at text[pos]; on ok, pos is just past it.
PyParse parse_py_literal(std::string_view text, size_t& pos, Json& out);

// Parses `name=literal, ...)` with pos just past the '('; on ok, pos is just past the ')' and
// out is an object in argument order.
PyParse parse_py_kwargs(std::string_view text, size_t& pos, Json& out);

size_t skip_py_space(std::string_view text, size_t pos);
// [A-Za-z_][A-Za-z0-9_]* (with_dash: '-' allowed after the first character, as llama-stack
// accepts in call names). Returns the end, or pos when there is none.
size_t scan_identifier(std::string_view text, size_t pos, bool with_dash = false);

}  // namespace herd::chat
