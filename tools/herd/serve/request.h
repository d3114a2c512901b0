// One API request, checked field by field and turned into the engine's terms. Every problem is an
// ApiError (400) naming the field as a path ("messages[2].role") and the reason.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "herd/herd.h"

namespace herd_serve {

struct RequestLimits {
  int max_n = 16;             // choices per request
  int max_stop = 16;          // stop strings
  size_t max_stop_bytes = 1024;
  size_t max_tools = 256;
  size_t max_messages = 4096;
};

struct ApiRequest {
  bool chat = true;                   // /v1/chat/completions, else /v1/completions
  herd::GenerateRequest gen;          // the prompt as ids, max_tokens, sampling, n_samples
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
  int n_logprobs = 0;                 // alternatives per token when logprobs are asked for
  bool logprobs = false;              // per-token logprobs in the reply
  bool echo = false;                  // completions: the prompt's text (and logprobs) first
  std::string prompt_text;            // completions: the prompt as text, for echo
  bool parse_tools = false;           // Llama 3.1 tool calls in the reply become tool_calls
  herd::ToolParseOptions tool_options;
  // The forced beginning of the reply (tool_choice "required" or a named function, or the final
  // assistant message with continue_final_message): it is part of the prompt's ids and of the
  // text the tool-call parser reads.
  std::string prefill;
  // herd's retrieval extension: the passages found for the last user message, which was
  // replaced by the grounded turn `herd chat --docs` builds (docs/serve.md).
  bool retrieval = false;
  std::vector<herd::Passage> sources;
};

// The server's document index for the retrieval extension (none without --docs).
struct Retrieval {
  const herd::Retriever* docs = nullptr;
  int k = 3;  // passages per request unless it asks for another number (as herd chat --docs-k)
};

// POST /v1/chat/completions and POST /v1/completions bodies. The engine gives the tokenizer, the
// prompt format and the context the prompt and max_tokens must fit in. A chat body comes with its
// text too: tool definitions are rendered in the client's key order, which parsing loses.
ApiRequest parse_chat_request(const nlohmann::json& body, const std::string& text, const herd::Engine& engine,
                              const RequestLimits& limits, const Retrieval& retrieval = {});
// The same without fitting max_tokens to the context: the prompt of a chat request as POST
// /tokenize counts it (a prompt longer than the context is not an error there).
ApiRequest parse_chat_prompt(const nlohmann::json& body, const std::string& text, const herd::Engine& engine,
                             const RequestLimits& limits, const Retrieval& retrieval = {});
ApiRequest parse_completion_request(const nlohmann::json& body, const herd::Engine& engine,
                                    const RequestLimits& limits);

// The body of a POST as a JSON object: 400 for malformed JSON, nesting past herd's limit, or
// anything but an object.
nlohmann::json parse_body(const std::string& body);

}  // namespace herd_serve
