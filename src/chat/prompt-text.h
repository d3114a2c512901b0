// A rendered prompt that remembers which bytes the template wrote and which came from the caller
// (message content, tool definitions, names, dates). Only the template's own special-token text
// may become special tokens in the safe tokenization.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace herd::chat {

struct PromptPiece {
  std::string text;
  bool from_template;
};

class PromptText {
 public:
  void add_template(std::string_view text) { add(text, true); }
  void add_content(std::string_view text) { add(text, false); }
  const std::vector<PromptPiece>& pieces() const { return pieces_; }
  std::string text() const;

 private:
  void add(std::string_view text, bool from_template);
  std::vector<PromptPiece> pieces_;
};

}  // namespace herd::chat
