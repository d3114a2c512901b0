// Which prompt format a model's chat template asks for. herd renders formats itself rather than
// running Jinja: Llama 3.1's headers (the native format, llama3-format.h) and ChatML
// (chatml-format.h), recognised by the special tokens the template writes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "chat/conversation.h"
#include "chat/prompt-text.h"

namespace herd::chat {

struct ChatFormat {
  enum class Kind { llama3, chatml, unsupported };
  Kind kind = Kind::llama3;
  // ChatML templates that open with a fixed system turn when the conversation has none
  // (SmolLM2's "You are a helpful AI assistant named SmolLM, ...").
  std::optional<std::string> default_system;
};

// An empty template means Llama 3.1's (the Llama checkpoints without a template are base models
// whose tokenizer still has its headers).
ChatFormat detect_chat_format(std::string_view chat_template);

// Renders c in `format`; invalid input for an unsupported template, and for tools or tool calls
// in a format without them.
PromptText render_chat(const ChatFormat& format, const Conversation& c);

}  // namespace herd::chat
