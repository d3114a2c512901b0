#include "chat/chatml-format.h"

#include "common/check.h"

namespace herd::chat {

PromptText render_chatml(const Conversation& c, const std::optional<std::string>& default_system) {
  HERD_REQUIRE(!c.tools && !c.builtin_tools, "conversation: tools are offered, but this model's prompt format (ChatML) "
                                             "has no tool calling; remove the tools");
  PromptText p;
  auto turn = [&](const std::string& role, const std::string& content) {
    p.add_template("<|im_start|>");
    p.add_content(role);
    p.add_template("\n");
    p.add_content(content);
    p.add_template("<|im_end|>\n");
  };
  // The templates write it inside their message loop, so an empty conversation has none.
  if (default_system && !c.messages.empty() && c.messages.front().role != "system") turn("system", *default_system);
  for (size_t i = 0; i < c.messages.size(); ++i) {
    const Message& m = c.messages[i];
    HERD_REQUIRE(m.tool_calls.empty(), "conversation: message ", i,
                 " has tool calls, which this model's prompt format (ChatML) cannot express");
    turn(m.role, m.content.is_string() ? m.content.get<std::string>() : m.content.dump());
  }
  if (c.add_generation_prompt) p.add_template("<|im_start|>assistant\n");
  return p;
}

}  // namespace herd::chat
