// The Llama 3.1 Instruct prompt, byte for byte what the official Hugging Face chat template
// (tests/data/chat/chat_template.jinja) renders through transformers.
#pragma once

#include "chat/conversation.h"
#include "chat/prompt-text.h"

namespace herd::chat {

// Throws an invalid-input Error (naming the message) where the template would raise.
PromptText render_llama3(const Conversation& c);

// Python's str.strip(): Jinja's `trim` removes Unicode whitespace, not only ASCII.
std::string py_strip(const std::string& s);

}  // namespace herd::chat
