#include "chat/conversation.h"

#include "common/check.h"
#include "common/json-limits.h"

namespace herd::chat {
namespace {

const Json& field(const Json& obj, const char* key) {
  static const Json absent;
  if (!obj.is_object() || !obj.contains(key)) return absent;
  return obj.at(key);  // null reads as absent, as `none` does in the template
}

std::string string_field(const Json& obj, const char* key, const std::string& where, bool required) {
  const Json& v = field(obj, key);
  if (v.is_null()) {
    HERD_REQUIRE(!required, where, ": \"", key, "\" is missing");
    return "";
  }
  HERD_REQUIRE(v.is_string(), where, ".", key, ": must be a string");
  return v.get<std::string>();
}

// OpenAI's {"type": "function", "function": {"name", "arguments"}}, or {"name", "arguments"}.
ToolCall tool_call_from_json(const Json& j, const std::string& where) {
  HERD_REQUIRE(j.is_object(), where, ": must be an object");
  const Json& fn = j.contains("function") ? j.at("function") : j;
  const std::string w = j.contains("function") ? where + ".function" : where;
  HERD_REQUIRE(fn.is_object(), w, ": must be an object");
  ToolCall call;
  call.name = string_field(fn, "name", w, true);
  const Json& args = field(fn, "arguments");
  // A JSON string is kept as a string: the template writes it quoted, as transformers does.
  if (!args.is_null()) call.arguments = args;
  return call;
}

Message message_from_json(const Json& j, const std::string& where) {
  HERD_REQUIRE(j.is_object(), where, ": must be an object");
  Message m;
  m.role = string_field(j, "role", where, true);
  m.content = j.contains("content") && !j.at("content").is_null() ? j.at("content") : Json("");
  if (j.contains("tool_calls")) {
    const Json& calls = j.at("tool_calls");
    // The template takes the tool-call branch for any "tool_calls" key, and raises unless it
    // holds exactly one call; an empty list would be lost below, so it is refused here.
    HERD_REQUIRE(calls.is_array() && !calls.empty(), where, ".tool_calls: must be a non-empty list");
    for (size_t i = 0; i < calls.size(); ++i)
      m.tool_calls.push_back(tool_call_from_json(calls[i], where + ".tool_calls[" + std::to_string(i) + "]"));
  }
  return m;
}

std::vector<Json> tools_from_json(const Json& v, const std::string& where) {
  HERD_REQUIRE(v.is_array(), where, ": must be a list of tool definitions");
  for (size_t i = 0; i < v.size(); ++i)
    HERD_REQUIRE(v[i].is_object(), where, "[", i, "]: must be a JSON object (a function definition)");
  return std::vector<Json>(v.begin(), v.end());
}

bool bool_field(const Json& obj, const char* key, const std::string& where, bool fallback) {
  const Json& v = field(obj, key);
  if (v.is_null()) return fallback;
  HERD_REQUIRE(v.is_boolean(), where, ".", key, ": must be true or false");
  return v.get<bool>();
}

}  // namespace

Conversation conversation_from_json(const Json& doc) {
  HERD_REQUIRE(doc.is_object(), "conversation: must be a JSON object with \"messages\"");
  // What parse_json_limited lets through (json_depth counts the innermost values as a level too):
  // the values are copied and written out by code that recurses once per level.
  HERD_REQUIRE(json_depth(doc) <= kMaxJsonDepth + 1, "conversation: JSON nested deeper than ", kMaxJsonDepth,
               " levels");
  HERD_REQUIRE(doc.contains("messages") && doc.at("messages").is_array(), "messages: must be a list");
  const bool nested = doc.contains("variables");
  const Json& vars = nested ? doc.at("variables") : doc;
  const std::string w = nested ? "variables" : "conversation";
  HERD_REQUIRE(vars.is_object(), "variables: must be an object");

  Conversation c;
  const Json& messages = doc.at("messages");
  for (size_t i = 0; i < messages.size(); ++i)
    c.messages.push_back(message_from_json(messages[i], "messages[" + std::to_string(i) + "]"));
  for (const char* key : {"custom_tools", "tools"}) {
    const Json& v = field(vars, key);
    if (!v.is_null()) {
      c.tools = tools_from_json(v, key);
      break;  // the template: custom_tools, when defined, replaces tools
    }
  }
  if (const Json& b = field(vars, "builtin_tools"); !b.is_null()) {
    HERD_REQUIRE(b.is_array(), "builtin_tools: must be a list of names");
    c.builtin_tools.emplace();
    for (const Json& name : b) {
      HERD_REQUIRE(name.is_string(), "builtin_tools: every entry must be a string");
      c.builtin_tools->push_back(name.get<std::string>());
    }
  }
  if (vars.contains("date_string")) c.date_string = string_field(vars, "date_string", w, true);
  c.tools_in_user_message = bool_field(vars, "tools_in_user_message", w, true);
  c.add_generation_prompt = bool_field(vars, "add_generation_prompt", w, true);
  return c;
}

}  // namespace herd::chat
