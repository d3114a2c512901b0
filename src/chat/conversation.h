// A conversation as the chat template sees it, with JSON values already parsed. The public
// herd::Conversation (include/herd/chat.h) is converted into this at the API boundary.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "chat/py-json.h"

namespace herd::chat {

struct ToolCall {
  std::string name;
  Json arguments = Json::object();
  std::string raw;
};

struct Message {
  std::string role;
  Json content = "";  // a string, or any JSON value for a tool result
  std::vector<ToolCall> tool_calls;
};

struct Conversation {
  std::vector<Message> messages;
  std::optional<std::vector<Json>> tools;  // `tools`, or `custom_tools` when that was given
  std::optional<std::vector<std::string>> builtin_tools;
  std::string date_string = "26 Jul 2024";
  bool tools_in_user_message = true;
  bool add_generation_prompt = true;
};

// Reads the flat shape {"messages": [...], "tools": ..., ...} or the vectors' nested
// {"messages": [...], "variables": {...}}. Throws an invalid-input Error naming the field, also
// for a document nested deeper than parse_json_limited allows.
Conversation conversation_from_json(const Json& doc);

}  // namespace herd::chat
