// Completions -> content + tool calls, for every call format Llama 3.1 (and 3.2) models write:
// <|python_tag|> + a built-in call, JSON or code; JSON calls {"name", "parameters"|"arguments"};
// <function=NAME>{...}</function>; a whole-message list [f(a=1), g(b="x")]. herd's policy
// (docs/tool-calling.md): text around calls stays content, several calls are allowed, and
// nothing malformed throws: it stays content, with a diagnostic.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "chat/conversation.h"

namespace herd::chat {

enum class End { eom, eot, length };

struct Parsed {
  std::string content;
  std::vector<ToolCall> calls;
  End end = End::length;
  std::vector<std::string> diagnostics;
  // Only when parsed with final = false: the part of `content` that no later text can change
  // (everything before the first byte that may still become part of a call or an end marker).
  std::string settled;
  bool holding = false;  // some text is held back
};

// final = false parses a completion still being generated (see Parsed::settled).
Parsed parse_completion(std::string_view text, const std::vector<std::string>& builtin_tools, bool final);

// Feeds a completion piece by piece; visible text is the settled content (chat/tool-parse.h).
class ToolCallStream {
 public:
  explicit ToolCallStream(std::vector<std::string> builtin_tools) : builtins_(std::move(builtin_tools)) {}
  void push(std::string_view delta, std::string& visible);
  bool holding() const { return holding_; }
  Parsed finish(std::string& visible);

 private:
  std::vector<std::string> builtins_;
  std::string text_;
  std::string shown_;  // the content already handed out
  bool holding_ = false;
};

}  // namespace herd::chat
