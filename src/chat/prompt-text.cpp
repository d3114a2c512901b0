#include "chat/prompt-text.h"

#include "common/check.h"

namespace herd::chat {
namespace {

[[noreturn]] void too_long(const std::string& what) {
  fail_input(what, "the prompt would be longer than ", kMaxPromptBytes >> 20,
             " MiB, far more than any model's context; shorten it (deeply nested JSON is indented on every line)");
}

}  // namespace

void PromptText::add(std::string_view text, bool from_template) {
  if (text.empty()) return;
  if (text.size() > kMaxPromptBytes - size_) too_long("");
  size_ += text.size();
  if (!pieces_.empty() && pieces_.back().from_template == from_template)
    pieces_.back().text += text;
  else
    pieces_.push_back({std::string(text), from_template});
}

void PromptText::add_json(const Json& value, int indent, const std::string& what) {
  std::string json;
  if (!py_json_dumps_to(value, indent, kMaxPromptBytes - size_, json)) too_long(what + ": with it, ");
  add_content(json);
}

std::string PromptText::text() const {
  std::string out;
  out.reserve(size_);
  for (const PromptPiece& p : pieces_) out += p.text;
  return out;
}

}  // namespace herd::chat
