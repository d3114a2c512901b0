// ChatML, the second prompt format: <|im_start|>ROLE\nCONTENT<|im_end|>\n per message, and
// <|im_start|>assistant\n to ask for a reply (SmolLM2, Qwen and others).
#pragma once

#include <optional>
#include <string>

#include "chat/conversation.h"
#include "chat/prompt-text.h"

namespace herd::chat {

// default_system opens the prompt when the first message is not a system message. Tools and
// tool calls are refused: ChatML itself defines no way to offer or call them.
PromptText render_chatml(const Conversation& c, const std::optional<std::string>& default_system);

}  // namespace herd::chat
