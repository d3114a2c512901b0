// The tool parts of the Llama 3.1 prompt (official HF template): the built-in tool line, the
// custom tool definitions, and assistant tool calls rendered back into history.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "chat/conversation.h"
#include "chat/prompt-text.h"

namespace herd::chat {

// "Tools: brave_search, wolfram_alpha\n\n" (code_interpreter is implied by "Environment: ipython").
void add_builtin_tools_line(const std::vector<std::string>& builtin_tools, PromptText& out);

// The instructions and each definition as json.dumps(indent=4), as the template writes them
// into the system message or the first user message.
void add_tool_definitions(const std::vector<Json>& tools, PromptText& out);

// An assistant turn that called a tool, header and end token included. Throws invalid input
// (naming `where`) when the template would raise.
void add_tool_call_turn(const Message& m, const std::optional<std::vector<std::string>>& builtin_tools,
                        const std::string& where, PromptText& out);

}  // namespace herd::chat
