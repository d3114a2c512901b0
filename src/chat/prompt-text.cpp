#include "chat/prompt-text.h"

namespace herd::chat {

void PromptText::add(std::string_view text, bool from_template) {
  if (text.empty()) return;
  if (!pieces_.empty() && pieces_.back().from_template == from_template)
    pieces_.back().text += text;
  else
    pieces_.push_back({std::string(text), from_template});
}

std::string PromptText::text() const {
  std::string out;
  for (const PromptPiece& p : pieces_) out += p.text;
  return out;
}

}  // namespace herd::chat
