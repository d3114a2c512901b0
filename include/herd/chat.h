// Llama 3.1 conversations: the prompt exactly as the official Hugging Face chat template renders
// it, and the model's completions turned back into text and structured tool calls.
// docs/prompt-format.md and docs/tool-calling.md have the details. JSON travels as text here
// (std::string) so that this header needs nothing beyond the standard library.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "herd/export.h"
#include "herd/status.h"
#include "herd/tokenizer.h"

namespace herd {

// One call the model asked for. The program around the model runs it; the model never does.
struct ToolCall {
  std::string name;               // "get_weather", "brave_search", "code_interpreter"
  std::string arguments = "{}";   // a JSON object as text; {"code": "..."} for code_interpreter
  std::string raw;                // the call exactly as the model wrote it (empty when built by hand)
};

struct Message {
  std::string role;  // system | user | assistant | tool | ipython ("tool" is rendered as ipython)
  std::string content;
  // content holds JSON text rather than a plain string: a tool result that is an object, a list
  // or a number (the template writes objects and lists as JSON, numbers as they are).
  bool content_is_json = false;
  // An assistant turn that called a tool; the Llama 3.1 template renders exactly one.
  std::vector<ToolCall> tool_calls;
};

// One custom tool: a JSON-schema function definition as JSON text,
// {"type": "function", "function": {"name": ..., "description": ..., "parameters": {...}}}.
struct ToolDefinition {
  std::string json;
};

// What the template sees. An absent optional is a variable the caller did not pass.
struct Conversation {
  std::vector<Message> messages;
  std::optional<std::vector<ToolDefinition>> tools;
  std::optional<std::vector<ToolDefinition>> custom_tools;  // the template's alias; wins over tools
  std::optional<std::vector<std::string>> builtin_tools;    // brave_search, wolfram_alpha, code_interpreter
  std::string date_string = "26 Jul 2024";
  bool tools_in_user_message = true;  // false: custom tools go into the system message
  bool add_generation_prompt = true;
};

// Reads the JSON of `herd prompt --conversation` (docs/prompt-format.md): the flat shape
// {"messages": [...], "tools": [...], ...} or the golden vectors' {"messages", "variables"}.
HERD_API Status parse_conversation(std::string_view json, Conversation* out);

// The prompt text, byte for byte what the official template renders (it begins with
// <|begin_of_text|>). Invalid input names the message and the reason.
HERD_API Status render_prompt(const Conversation& conversation, std::string* text);

// The prompt format of a model, read from its chat template (GGUF tokenizer.chat_template, or
// tokenizer_config.json beside tokenizer.json): Llama 3.1's headers (also when there is no
// template), ChatML (<|im_start|>role ... <|im_end|>, no tools), or one herd cannot render.
enum class PromptFormat { llama3, chatml, unsupported };
HERD_API PromptFormat prompt_format(const Tokenizer& tokenizer);

// The prompt's token ids in the tokenizer's prompt format (render_prompt's text for Llama 3.1,
// BOS included once; ChatML with the template's default system turn when it has one). By default
// special-token text inside message content (and tool definitions, names, dates) stays plain
// text, so user text can never forge a turn; special_in_content = true tokenizes the whole text
// as Hugging Face does.
HERD_API Status render_prompt_ids(const Conversation& conversation, const Tokenizer& tokenizer,
                                  bool special_in_content, std::vector<int32_t>* ids);

// Expands the alias notation into special-token text: <<start>>, <<system>>, <<user>>,
// <<assistant>>, <<ipython>>, <<end>>, <<stop>>, <<continue>> (docs/prompt-format.md).
// Everything else is kept as it is.
HERD_API std::string expand_aliases(std::string_view text);

// --- completions -> tool calls

enum class CompletionEnd { eom, eot, length };
HERD_API const char* completion_end_name(CompletionEnd end);  // "eom", "eot", "length"

struct ToolParseOptions {
  // Names whose `NAME.call(...)` after <|python_tag|> is a built-in call; any other text after
  // the tag is code for code_interpreter.
  std::vector<std::string> builtin_tools = {"brave_search", "wolfram_alpha", "photogen"};
};

struct ParsedCompletion {
  std::string content;  // every byte that is not part of a call ("" when none)
  std::vector<ToolCall> tool_calls;
  CompletionEnd end = CompletionEnd::length;
  std::vector<std::string> diagnostics;  // why something that looked like a call was kept as text
};

// Never throws; malformed or cut-off calls stay in content and add a diagnostic.
HERD_API ParsedCompletion parse_tool_calls(std::string_view completion, const ToolParseOptions& options = {});

// The same parser, fed piece by piece (token by token) while the model generates. push()
// appends to *visible only text that can no longer belong to a tool call or an end marker, so a
// chat UI that prints *visible never shows raw call text.
class HERD_API ToolCallStream {
 public:
  explicit ToolCallStream(ToolParseOptions options = {});
  ~ToolCallStream();
  ToolCallStream(ToolCallStream&&) noexcept;
  ToolCallStream& operator=(ToolCallStream&&) noexcept;

  void push(std::string_view delta, std::string* visible);
  // True while some text is held back because it may be (the start of) a tool call.
  bool maybe_tool_call() const;
  // The completion is over: appends the rest of the content to *visible and returns the same
  // result as parse_tool_calls on everything pushed.
  ParsedCompletion finish(std::string* visible);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace herd
