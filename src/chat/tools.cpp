#include "chat/tools.h"

#include <algorithm>

#include "common/check.h"

namespace herd::chat {

void add_builtin_tools_line(const std::vector<std::string>& builtin_tools, PromptText& out) {
  out.add_template("Tools: ");
  bool first = true;
  for (const std::string& name : builtin_tools) {
    if (name == "code_interpreter") continue;
    if (!first) out.add_template(", ");
    first = false;
    out.add_content(name);
  }
  out.add_template("\n\n");
}

void add_tool_definitions(const std::vector<Json>& tools, PromptText& out) {
  out.add_template(
      "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its "
      "value}.Do not use variables.\n\n");
  for (size_t i = 0; i < tools.size(); ++i) {
    out.add_json(tools[i], 4, "tools[" + std::to_string(i) + "]");
    out.add_template("\n\n");
  }
}

void add_tool_call_turn(const Message& m, const std::optional<std::vector<std::string>>& builtin_tools,
                        const std::string& where, PromptText& out) {
  HERD_REQUIRE(m.tool_calls.size() == 1, where, ".tool_calls: holds ", m.tool_calls.size(),
               " calls; the Llama 3.1 template renders exactly one tool call per message");
  const ToolCall& call = m.tool_calls[0];
  out.add_template("<|start_header_id|>assistant<|end_header_id|>\n\n");
  const bool builtin =
      builtin_tools && std::find(builtin_tools->begin(), builtin_tools->end(), call.name) != builtin_tools->end();
  if (builtin) {
    HERD_REQUIRE(call.arguments.is_object(), where, ".tool_calls[0].arguments: must be an object for built-in tool ",
                 call.name);
    out.add_template("<|python_tag|>");
    out.add_content(call.name);
    out.add_template(".call(");
    bool first = true;
    for (auto it = call.arguments.begin(); it != call.arguments.end(); ++it) {
      // The template concatenates with `+`, which Jinja refuses for anything but strings.
      HERD_REQUIRE(it->is_string(), where, ".tool_calls[0].arguments.", it.key(),
                   ": must be a string for built-in tool ", call.name);
      if (!first) out.add_template(", ");
      first = false;
      out.add_content(it.key());
      out.add_template("=\"");
      out.add_content(it->get<std::string>());
      out.add_template("\"");
    }
    out.add_template(")");
  } else {
    out.add_template("{\"name\": \"");
    out.add_content(call.name);
    out.add_template("\", \"parameters\": ");
    out.add_json(call.arguments, -1, where + ".tool_calls[0].arguments");
    out.add_template("}");
  }
  // The template's "ipython mode": any turn with a tool call ends in <|eom_id|> once built-in
  // tools are on, even a custom call.
  out.add_template(builtin_tools ? "<|eom_id|>" : "<|eot_id|>");
}

}  // namespace herd::chat
