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

// Where a parse of a completion still being generated can start again once more text has come,
// without reading what came before: a point in plain text with no call or marker still open
// before it. ToolCallStream keeps one so that only the text from there on is read again.
struct Resume {
  size_t pos = 0;
  size_t content = 0;       // bytes of content between the parse's own start and pos (all settled)
  bool after_call = false;  // pos is the end of a call (separators that follow may still be dropped)
  bool after_text = false;  // content before pos holds more than whitespace
  // The ends of the objects around pos that were not calls and whose insides are searched.
  std::vector<size_t> searched;
};

struct Parsed {
  std::string content;
  std::vector<ToolCall> calls;
  End end = End::length;
  std::vector<std::string> diagnostics;
  // Only when parsed with final = false: the part of `content` that no later text can change
  // (everything before the first byte that may still become part of a call or an end marker).
  std::string settled;
  bool holding = false;  // some text is held back
  Resume resume;         // only when parsed with final = false
};

// final = false parses a completion still being generated (see Parsed::settled). `from`, only
// with final = false, is a Resume an earlier parse of a prefix of `text` returned: the parse starts
// there, and `content` and `settled` hold only the content after from.pos.
// The work is linear in the text: each '{' is matched through one shared index, and objects that
// are not calls are searched for calls inside them only a few levels deep.
Parsed parse_completion(std::string_view text, const std::vector<std::string>& builtin_tools, bool final,
                        const Resume& from = {});

// Feeds a completion piece by piece; visible text is the settled content. Each parse starts at
// the last Resume, and while text is held (a call being written) it is parsed again only once it
// has grown by an eighth, so a long completion costs linear time, not a parse per token.
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
  Resume resume_;
  size_t content_before_resume_ = 0;  // bytes of shown_ before resume_.pos
  size_t parsed_size_ = 0;            // text_.size() at the last parse
  bool holding_ = false;
};

}  // namespace herd::chat
