// A rendered prompt that remembers which bytes the template wrote and which came from the caller
// (message content, tool definitions, names, dates). Only the template's own special-token text
// may become special tokens in the safe tokenization.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "chat/py-json.h"

namespace herd::chat {

// Far more than any model's context holds. A longer prompt is refused rather than built: tool
// definitions are written with 4 spaces of indentation per level on every line, so a small file
// of deeply nested JSON would otherwise render to gigabytes.
inline constexpr size_t kMaxPromptBytes = size_t(64) << 20;

struct PromptPiece {
  std::string text;
  bool from_template;
};

class PromptText {
 public:
  void add_template(std::string_view text) { add(text, true); }
  void add_content(std::string_view text) { add(text, false); }
  // A JSON value as caller content, written as py_json_dumps writes it; `what` names it in the
  // error when the prompt would grow past kMaxPromptBytes.
  void add_json(const Json& value, int indent, const std::string& what);
  const std::vector<PromptPiece>& pieces() const { return pieces_; }
  std::string text() const;

 private:
  void add(std::string_view text, bool from_template);
  std::vector<PromptPiece> pieces_;
  size_t size_ = 0;
};

}  // namespace herd::chat
