#include "chat/chat-format.h"

#include "chat/chatml-format.h"
#include "chat/llama3-format.h"
#include "common/check.h"

namespace herd::chat {
namespace {

// The text between `open` and the next <|im_end|> in the template, with the Jinja escapes \n and
// \' undone; nullopt when it is not there.
std::optional<std::string> literal_after(std::string_view tmpl, std::string_view open) {
  const size_t start = tmpl.find(open);
  if (start == std::string_view::npos) return std::nullopt;
  const size_t body = start + open.size(), end = tmpl.find("<|im_end|>", body);
  if (end == std::string_view::npos) return std::nullopt;
  std::string out;
  for (size_t i = body; i < end; ++i) {
    if (tmpl[i] == '\\' && i + 1 < end && (tmpl[i + 1] == 'n' || tmpl[i + 1] == '\'' || tmpl[i + 1] == '"')) {
      out.push_back(tmpl[i + 1] == 'n' ? '\n' : tmpl[i + 1]);
      ++i;
    } else {
      out.push_back(tmpl[i]);
    }
  }
  return out;
}

}  // namespace

ChatFormat detect_chat_format(std::string_view tmpl) {
  ChatFormat f;
  if (tmpl.empty() || tmpl.find("<|start_header_id|>") != std::string_view::npos) return f;
  if (tmpl.find("<|im_start|>") == std::string_view::npos) {
    f.kind = ChatFormat::Kind::unsupported;
    return f;
  }
  f.kind = ChatFormat::Kind::chatml;
  // A system turn written as a literal, guarded by "no system message first", is the default.
  if (tmpl.find("!= 'system'") != std::string_view::npos || tmpl.find("!= \"system\"") != std::string_view::npos) {
    for (std::string_view open : {"<|im_start|>system\n", "<|im_start|>system\\n"})
      if (auto text = literal_after(tmpl, open)) {
        f.default_system = std::move(text);
        break;
      }
  }
  return f;
}

PromptText render_chat(const ChatFormat& format, const Conversation& c) {
  switch (format.kind) {
    case ChatFormat::Kind::llama3: return render_llama3(c);
    case ChatFormat::Kind::chatml: return render_chatml(c, format.default_system);
    case ChatFormat::Kind::unsupported: break;
  }
  fail_input("the model's chat template is neither Llama 3.1's nor ChatML, which are the formats herd renders; "
             "send a raw prompt (text or ids) instead");
}

}  // namespace herd::chat
