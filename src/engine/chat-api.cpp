// The public chat API (include/herd/chat.h) over src/chat: JSON text in the public structs is
// parsed here, and herd::Error becomes a Status.
#include "chat/aliases.h"
#include "chat/chat-format.h"
#include "chat/conversation.h"
#include "chat/llama3-format.h"
#include "chat/tool-parse.h"
#include "common/check.h"
#include "common/json-limits.h"
#include "engine/guarded.h"
#include "herd/chat.h"

namespace herd {
namespace {

chat::Json parse_json_field(const std::string& text, const std::string& where) {
  std::optional<chat::Json> j = parse_json_limited<chat::Json>(text, where);
  HERD_REQUIRE(j, where, ": is not valid JSON");
  return std::move(*j);
}

std::vector<chat::Json> tools_to_internal(const std::vector<ToolDefinition>& tools, const char* name) {
  std::vector<chat::Json> out;
  for (size_t i = 0; i < tools.size(); ++i) {
    const std::string where = std::string(name) + "[" + std::to_string(i) + "]";
    out.push_back(parse_json_field(tools[i].json, where));
    HERD_REQUIRE(out.back().is_object(), where, ": must be a JSON object (a function definition)");
  }
  return out;
}

chat::Conversation to_internal(const Conversation& c) {
  chat::Conversation out;
  for (size_t i = 0; i < c.messages.size(); ++i) {
    const Message& m = c.messages[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    chat::Message im{m.role, m.content_is_json ? parse_json_field(m.content, where + ".content") : chat::Json(m.content), {}};
    for (size_t k = 0; k < m.tool_calls.size(); ++k)
      im.tool_calls.push_back({m.tool_calls[k].name,
                               parse_json_field(m.tool_calls[k].arguments,
                                                where + ".tool_calls[" + std::to_string(k) + "].arguments"),
                               m.tool_calls[k].raw});
    out.messages.push_back(std::move(im));
  }
  if (c.custom_tools) out.tools = tools_to_internal(*c.custom_tools, "custom_tools");
  else if (c.tools) out.tools = tools_to_internal(*c.tools, "tools");
  out.builtin_tools = c.builtin_tools;
  out.date_string = c.date_string;
  out.tools_in_user_message = c.tools_in_user_message;
  out.add_generation_prompt = c.add_generation_prompt;
  return out;
}

ToolCall to_public(const chat::ToolCall& c) { return {c.name, chat::py_json_dumps(c.arguments), c.raw}; }

Conversation to_public(const chat::Conversation& c) {
  Conversation out;
  for (const chat::Message& m : c.messages) {
    Message pm{m.role, m.content.is_string() ? m.content.get<std::string>() : chat::py_json_dumps(m.content),
               !m.content.is_string(), {}};
    for (const chat::ToolCall& call : m.tool_calls) pm.tool_calls.push_back(to_public(call));
    out.messages.push_back(std::move(pm));
  }
  if (c.tools) {
    out.tools.emplace();
    for (const chat::Json& t : *c.tools) out.tools->push_back({chat::py_json_dumps(t)});
  }
  out.builtin_tools = c.builtin_tools;
  out.date_string = c.date_string;
  out.tools_in_user_message = c.tools_in_user_message;
  out.add_generation_prompt = c.add_generation_prompt;
  return out;
}

ParsedCompletion to_public(chat::Parsed&& p) {
  ParsedCompletion out;
  out.content = std::move(p.content);
  for (const chat::ToolCall& c : p.calls) out.tool_calls.push_back(to_public(c));
  out.end = p.end == chat::End::eom ? CompletionEnd::eom : p.end == chat::End::eot ? CompletionEnd::eot
                                                                                     : CompletionEnd::length;
  out.diagnostics = std::move(p.diagnostics);
  return out;
}

// Fallback for the never-throw promise: a failure inside the parser (out of memory) leaves the
// completion as plain text with the reason.
ParsedCompletion unparsed(std::string_view completion, const char* why) {
  ParsedCompletion out;
  out.content = std::string(completion);
  out.diagnostics.push_back(std::string("internal: ") + why);
  return out;
}

}  // namespace

Status parse_conversation(std::string_view json, Conversation* out) {
  return guarded([&] {
    const std::optional<chat::Json> doc = parse_json_limited<chat::Json>(json, "conversation");
    HERD_REQUIRE(doc, "conversation: is not valid JSON");
    *out = to_public(chat::conversation_from_json(*doc));
  });
}

PromptFormat prompt_format(const Tokenizer& tokenizer) {
  switch (chat::detect_chat_format(tokenizer.chat_template()).kind) {
    case chat::ChatFormat::Kind::llama3: return PromptFormat::llama3;
    case chat::ChatFormat::Kind::chatml: return PromptFormat::chatml;
    case chat::ChatFormat::Kind::unsupported: break;
  }
  return PromptFormat::unsupported;
}

Status render_prompt(const Conversation& conversation, std::string* text) {
  return guarded([&] { *text = chat::render_llama3(to_internal(conversation)).text(); });
}

Status render_prompt_ids(const Conversation& conversation, const Tokenizer& tokenizer, bool special_in_content,
                         std::vector<int32_t>* ids) {
  chat::PromptText prompt;
  const chat::ChatFormat format = chat::detect_chat_format(tokenizer.chat_template());
  if (Status s = guarded([&] { prompt = chat::render_chat(format, to_internal(conversation)); }); !s) return s;
  std::vector<int32_t> out;
  if (special_in_content) {
    if (Status s = tokenizer.encode(prompt.text(), true, false, &out); !s) return s;
    *ids = std::move(out);
    return Status::ok();
  }
  // Only the template's own <|...|> text becomes special ids. Caller text is joined with the
  // ordinary text around it and encoded as one run, so that ids equal Hugging Face's wherever
  // the content holds no special-token text.
  std::string run;
  auto flush = [&]() -> Status {
    Status s = tokenizer.encode(run, false, false, &out);
    run.clear();
    return s;
  };
  for (const chat::PromptPiece& piece : prompt.pieces()) {
    if (!piece.from_template) {
      run += piece.text;
      continue;
    }
    const std::string& t = piece.text;
    size_t pos = 0;
    while (pos < t.size()) {
      const size_t open = t.find("<|", pos), close = open == std::string::npos ? open : t.find("|>", open);
      const int32_t id = close == std::string::npos ? -1 : tokenizer.id_of(std::string_view(t).substr(open, close + 2 - open));
      if (id < 0) {
        const size_t upto = close == std::string::npos ? t.size() : close;
        run.append(t, pos, upto - pos);
        pos = upto;
        continue;
      }
      run.append(t, pos, open - pos);
      if (Status s = flush(); !s) return s;
      out.push_back(id);
      pos = close + 2;
    }
  }
  if (Status s = flush(); !s) return s;
  *ids = std::move(out);
  return Status::ok();
}

std::string expand_aliases(std::string_view text) { return chat::expand_aliases(text); }

const char* completion_end_name(CompletionEnd end) {
  switch (end) {
    case CompletionEnd::eom: return "eom";
    case CompletionEnd::eot: return "eot";
    case CompletionEnd::length: return "length";
  }
  return "length";
}

ParsedCompletion parse_tool_calls(std::string_view completion, const ToolParseOptions& options) {
  try {
    return to_public(chat::parse_completion(completion, options.builtin_tools, /*final=*/true));
  } catch (const std::exception& e) {
    return unparsed(completion, e.what());
  }
}

struct ToolCallStream::Impl {
  chat::ToolCallStream stream;
};

ToolCallStream::ToolCallStream(ToolParseOptions options)
    : impl_(std::make_unique<Impl>(Impl{chat::ToolCallStream(std::move(options.builtin_tools))})) {}
ToolCallStream::~ToolCallStream() = default;
ToolCallStream::ToolCallStream(ToolCallStream&&) noexcept = default;
ToolCallStream& ToolCallStream::operator=(ToolCallStream&&) noexcept = default;

void ToolCallStream::push(std::string_view delta, std::string* visible) { impl_->stream.push(delta, *visible); }
bool ToolCallStream::maybe_tool_call() const { return impl_->stream.holding(); }
ParsedCompletion ToolCallStream::finish(std::string* visible) { return to_public(impl_->stream.finish(*visible)); }

}  // namespace herd
