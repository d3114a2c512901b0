#include "request.h"

#include <algorithm>

#include "api-error.h"
#include "request-fields.h"

namespace herd_serve {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// The template writes tool definitions and tool call arguments as the client wrote them, so they
// keep the client's key order: they are parsed again as ordered_json (nlohmann::json sorts keys).
// ordered_json finds a key by a linear search, quadratic in an object's size, so these values are
// bounded first: at most 1024 keys in one object, 65536 in all of them together.
class KeyBudget {
 public:
  void charge(const json& root, const std::string& param) {
    std::vector<const json*> todo{&root};
    while (!todo.empty()) {
      const json* v = todo.back();
      todo.pop_back();
      if (v->is_object()) {
        if (v->size() > 1024)
          bad_request(param, "a JSON object here has " + std::to_string(v->size()) + " keys; at most 1024");
        left_ -= int64_t(v->size());
        if (left_ < 0) bad_request(param, "the tool definitions and tool call arguments hold more than 65536 keys together");
      }
      if (v->is_structured())
        for (const json& x : *v) todo.push_back(&x);
    }
  }

 private:
  int64_t left_ = 65536;
};

std::string dump_ordered(const ordered_json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The body's "tools" in the client's key order; everything else in the body is skipped unread.
ordered_json ordered_tools(const std::string& body) {
  const ordered_json doc = ordered_json::parse(
      body, [](int depth, ordered_json::parse_event_t ev, ordered_json& parsed) {
        return !(depth == 1 && ev == ordered_json::parse_event_t::key && parsed != "tools");
      },
      /*allow_exceptions=*/false);
  return doc.is_object() && doc.contains("tools") ? doc.at("tools") : ordered_json::array();
}

// The sampling fields both endpoints share, vLLM's extras (top_k, min_p, repetition_penalty)
// included.
void parse_sampling(const Fields& f, const RequestLimits& limits, ApiRequest* r) {
  herd::SamplingOptions& s = r->gen.sampling;
  if (auto v = f.number("temperature", 0, 2)) s.temperature = float(*v);
  if (auto v = f.number("top_p", 0, 1)) {
    if (*v == 0) bad_request("top_p", "must be greater than 0");
    s.top_p = float(*v);
  }
  if (auto v = f.integer("top_k", -1, 1 << 20)) s.top_k = int32_t(std::max<int64_t>(*v, 0));  // -1: off, as vLLM
  if (auto v = f.number("min_p", 0, 1)) s.min_p = float(*v);
  if (auto v = f.number("repetition_penalty", 0, 10)) {
    if (*v == 0) bad_request("repetition_penalty", "must be greater than 0");
    s.repetition_penalty = float(*v);
  }
  if (auto v = f.number("frequency_penalty", -2, 2)) s.frequency_penalty = float(*v);
  if (auto v = f.number("presence_penalty", -2, 2)) s.presence_penalty = float(*v);
  if (auto v = f.integer("seed", INT64_MIN, INT64_MAX)) s.seed = uint64_t(*v);
  if (const json* stop = f.get("stop")) {
    std::vector<std::string> stops;
    if (stop->is_string()) stops.push_back(stop->get<std::string>());
    else if (stop->is_array()) {
      for (const json& x : *stop) {
        if (!x.is_string()) bad_request("stop", "must be a string or an array of strings");
        stops.push_back(x.get<std::string>());
      }
    } else {
      bad_request("stop", "must be a string or an array of strings");
    }
    if (int(stops.size()) > limits.max_stop) bad_request("stop", "at most " + std::to_string(limits.max_stop) + " stop strings");
    for (const std::string& x : stops) {
      if (x.empty()) bad_request("stop", "a stop string must not be empty");
      if (x.size() > limits.max_stop_bytes)
        bad_request("stop", "a stop string must be at most " + std::to_string(limits.max_stop_bytes) + " bytes");
    }
    s.stop = std::move(stops);
  }
  if (auto v = f.integer("n", 1, limits.max_n)) r->gen.n_samples = int(*v);
  if (auto v = f.boolean("stream")) r->stream = *v;
  if (const json* so = f.object("stream_options")) {
    if (!r->stream) bad_request("stream_options", "only allowed with stream: true");
    if (auto v = Fields(*so, "stream_options").boolean("include_usage")) r->include_usage = *v;
  }
}

// max_tokens after the prompt: at most what the context leaves, and all of it when unset.
// The prompt must leave room for one token; `prompt_field` names it in the error.
void fit_max_tokens(std::optional<int64_t> asked, const char* prompt_field, const herd::Engine& engine, ApiRequest* r) {
  const int64_t context = engine.info().max_context;
  const int64_t n_prompt = int64_t(r->gen.prompt.size());
  const int64_t room = context - n_prompt;
  if (room < 1)
    bad_request(prompt_field, "the prompt has " + std::to_string(n_prompt) + " tokens; the context holds " +
                                std::to_string(context) + " (prompt and reply together)");
  r->gen.max_tokens = int(std::min(asked.value_or(room), room));
}

const herd::Tokenizer& tokenizer_of(const herd::Engine& engine) {
  if (!engine.tokenizer()) throw ApiError(400, "the served model has no tokenizer: send token ids to /v1/completions");
  return *engine.tokenizer();
}

// A message's content: a string, null, or an array of {"type": "text", "text": ...} parts.
std::string content_text(const json& m, const std::string& path) {
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array()) bad_request(path + ".content", "must be a string, null or an array of text parts");
  std::string text;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& part = (*it)[i];
    const std::string p = path + ".content[" + std::to_string(i) + "]";
    if (!part.is_object()) bad_request(p, "must be an object");
    Fields pf(part, p);
    if (pf.string("type").value_or("") != "text") bad_request(p + ".type", "only \"text\" parts are supported");
    auto t = pf.string("text");
    if (!t) bad_request(p + ".text", "is required");
    text += *t;
  }
  return text;
}

std::vector<herd::ToolCall> message_tool_calls(const json& calls, const std::string& path, KeyBudget* keys) {
  if (!calls.is_array()) bad_request(path, "must be an array");
  std::vector<herd::ToolCall> out;
  for (size_t i = 0; i < calls.size(); ++i) {
    const std::string p = path + "[" + std::to_string(i) + "]";
    if (!calls[i].is_object()) bad_request(p, "must be an object");
    const json* fn = Fields(calls[i], p).object("function");
    if (!fn) bad_request(p + ".function", "is required");
    Fields ff(*fn, p + ".function");
    herd::ToolCall call;
    auto name = ff.string("name");
    if (!name || name->empty()) bad_request(p + ".function.name", "is required");
    call.name = *name;
    const std::string args = ff.string("arguments").value_or("{}");
    // A string inside the body: the body's nesting bound did not see inside it.
    if (!herd::check_json_nesting(args, p + ".function.arguments"))
      bad_request(p + ".function.arguments", "nests JSON too deeply");
    const json parsed = json::parse(args, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object())
      bad_request(p + ".function.arguments", "must be a JSON object as a string");
    keys->charge(parsed, p + ".function.arguments");
    call.arguments = dump_ordered(ordered_json::parse(args));
    out.push_back(std::move(call));
  }
  return out;
}

std::vector<herd::Message> parse_messages(const Fields& f, const RequestLimits& limits, KeyBudget* keys) {
  const json* msgs = f.array("messages");
  if (!msgs || msgs->empty()) bad_request("messages", "must be a non-empty array");
  if (msgs->size() > limits.max_messages)
    bad_request("messages", "at most " + std::to_string(limits.max_messages) + " messages");
  std::vector<herd::Message> out;
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& m = (*msgs)[i];
    const std::string path = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) bad_request(path, "must be an object");
    Fields mf(m, path);
    auto role = mf.string("role");
    if (!role) bad_request(path + ".role", "is required");
    herd::Message msg;
    if (*role == "developer") msg.role = "system";  // OpenAI's newer name for the system turn
    else if (*role == "system" || *role == "user" || *role == "assistant" || *role == "tool" || *role == "ipython")
      msg.role = *role;
    else
      bad_request(path + ".role", "unknown role \"" + *role + "\" (system, user, assistant, tool or ipython)");
    msg.content = content_text(m, path);
    if (const json* calls = mf.get("tool_calls")) {
      if (msg.role != "assistant") bad_request(path + ".tool_calls", "only assistant messages carry tool calls");
      msg.tool_calls = message_tool_calls(*calls, path + ".tool_calls", keys);
      if (msg.tool_calls.size() > 1)
        bad_request(path + ".tool_calls", "Llama 3.1 renders one tool call per assistant turn");
    }
    out.push_back(std::move(msg));
  }
  return out;
}

bool valid_function_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return std::isalnum(uint8_t(c)) || c == '_' || c == '-' || c == '.'; });
}

std::vector<herd::ToolDefinition> parse_tools(const json& tools, const std::string& body, const RequestLimits& limits,
                                              KeyBudget* keys, std::vector<std::string>* names) {
  if (!tools.is_array()) bad_request("tools", "must be an array");
  if (tools.size() > limits.max_tools) bad_request("tools", "at most " + std::to_string(limits.max_tools) + " tools");
  std::vector<herd::ToolDefinition> out;
  for (size_t i = 0; i < tools.size(); ++i) {
    const std::string p = "tools[" + std::to_string(i) + "]";
    if (!tools[i].is_object()) bad_request(p, "must be an object");
    Fields tf(tools[i], p);
    if (tf.string("type").value_or("function") != "function") bad_request(p + ".type", "must be \"function\"");
    const json* fn = tf.object("function");
    if (!fn) bad_request(p + ".function", "is required");
    Fields ff(*fn, p + ".function");
    auto name = ff.string("name");
    if (!name || !valid_function_name(*name))
      bad_request(p + ".function.name", "must be 1 to 64 letters, digits, '_', '-' or '.'");
    ff.string("description");
    ff.object("parameters");
    keys->charge(tools[i], p);
    names->push_back(*name);
  }
  const ordered_json ordered = ordered_tools(body);
  for (const ordered_json& tool : ordered) {
    ordered_json def = {{"type", "function"}};  // first, where OpenAI's shape has it
    def.update(tool);
    out.push_back({dump_ordered(def)});
  }
  return out;
}

// tool_choice: "none", "auto", "required" or {"type": "function", "function": {"name": ...}}. A
// call is forced by starting the reply with the JSON the template asks calls to be written in.
void apply_tool_choice(const Fields& f, const std::vector<std::string>& names, herd::Conversation* conv, ApiRequest* r) {
  std::string choice = names.empty() ? "none" : "auto";
  std::string forced;
  if (const json* tc = f.get("tool_choice")) {
    if (tc->is_string()) {
      choice = tc->get<std::string>();
      if (choice != "none" && choice != "auto" && choice != "required")
        bad_request("tool_choice", "must be \"none\", \"auto\", \"required\" or a named function");
    } else if (tc->is_object()) {
      const json* fn = Fields(*tc, "tool_choice").object("function");
      auto name = fn ? Fields(*fn, "tool_choice.function").string("name") : std::nullopt;
      if (!name) bad_request("tool_choice.function.name", "is required");
      if (std::find(names.begin(), names.end(), *name) == names.end())
        bad_request("tool_choice.function.name", "\"" + *name + "\" is not one of the request's tools");
      choice = "named";
      forced = *name;
    } else {
      bad_request("tool_choice", "must be a string or an object");
    }
    if (choice != "none" && names.empty()) bad_request("tool_choice", "needs tools");
  }
  if (choice == "none") {
    conv->tools.reset();
    return;
  }
  r->parse_tools = true;
  if (choice == "required") r->prefill = "{\"name\": \"";
  if (choice == "named") r->prefill = "{\"name\": \"" + forced + "\", \"parameters\": ";
}

// vLLM's extensions, spelled as vLLM spells them. continue_final_message: the reply continues the
// final assistant message, whose text becomes the forced beginning of the reply (as a prefill:
// the template would close that turn). add_generation_prompt: false renders no assistant header.
void apply_continuation(const Fields& f, herd::Conversation* conv, ApiRequest* r) {
  const std::optional<bool> add_generation_prompt = f.boolean("add_generation_prompt");
  if (!f.boolean("continue_final_message").value_or(false)) {
    conv->add_generation_prompt = add_generation_prompt.value_or(true);
    return;
  }
  if (add_generation_prompt.value_or(false))
    bad_request("add_generation_prompt", "cannot be true with continue_final_message (the reply continues the final message)");
  if (!r->prefill.empty())
    bad_request("tool_choice", "\"required\" or a named function cannot be combined with continue_final_message");
  const herd::Message& last = conv->messages.back();
  if (last.role != "assistant" || !last.tool_calls.empty())
    bad_request("messages[" + std::to_string(conv->messages.size() - 1) + "]",
                "continue_final_message needs a final assistant message with content and no tool_calls");
  r->prefill = last.content;
  conv->messages.pop_back();
}

// "retrieval": true or {"k": N}: the last user message is answered from the server's documents,
// grounded as `herd chat --docs` grounds a turn (the same text: herd::grounded_message).
void apply_retrieval(const Fields& f, const Retrieval& retrieval, herd::Conversation* conv, ApiRequest* r) {
  const json* v = f.get("retrieval");
  if (!v) return;
  int k = retrieval.k;
  if (v->is_boolean()) {
    if (!v->get<bool>()) return;
  } else if (v->is_object()) {
    if (auto n = Fields(*v, "retrieval").integer("k", 1, 20)) k = int(*n);
  } else {
    bad_request("retrieval", "must be true, false or {\"k\": N}");
  }
  if (!retrieval.docs) bad_request("retrieval", "this server has no document index (start it with --docs INDEX)");
  auto last_user = std::find_if(conv->messages.rbegin(), conv->messages.rend(),
                                [](const herd::Message& m) { return m.role == "user"; });
  if (last_user == conv->messages.rend()) bad_request("retrieval", "needs a user message to search for");
  r->retrieval = true;
  if (herd::Status s = retrieval.docs->search(last_user->content, k, &r->sources); !s)
    throw ApiError(500, "the document index failed: " + s.message(), "server_error");
  if (!r->sources.empty()) last_user->content = herd::grounded_message(last_user->content, r->sources);
}

}  // namespace

json parse_body(const std::string& body) {
  if (!herd::check_json_nesting(body, "the request body")) throw ApiError(400, "the request body nests JSON too deeply");
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw ApiError(400, "the request body is not valid JSON");
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return j;
}

ApiRequest parse_chat_prompt(const json& body, const std::string& text, const herd::Engine& engine,
                             const RequestLimits& limits, const Retrieval& retrieval) {
  Fields f(body);
  ApiRequest r;
  r.chat = true;
  f.string("model");
  parse_sampling(f, limits, &r);
  if (auto v = f.boolean("logprobs")) r.logprobs = *v;
  if (auto v = f.integer("top_logprobs", 0, 20)) {
    if (!r.logprobs) bad_request("top_logprobs", "needs logprobs: true");
    r.n_logprobs = int(*v);
  }
  // The engine computes logprobs with at least one alternative; the reply shows only those asked.
  r.gen.sampling.logprobs = r.logprobs ? std::max(r.n_logprobs, 1) : 0;

  const herd::Tokenizer& tok = tokenizer_of(engine);
  herd::Conversation conv;
  KeyBudget keys;
  conv.messages = parse_messages(f, limits, &keys);
  apply_retrieval(f, retrieval, &conv, &r);
  std::vector<std::string> names;
  if (const json* tools = f.get("tools")) conv.tools = parse_tools(*tools, text, limits, &keys, &names);
  apply_tool_choice(f, names, &conv, &r);
  apply_continuation(f, &conv, &r);
  if (const json* builtin = f.array("builtin_tools")) {  // herd's extension: Llama 3.1's built-in tools
    std::vector<std::string> list;
    for (const json& b : *builtin) {
      const std::string name = b.is_string() ? b.get<std::string>() : "";
      if (name != "brave_search" && name != "wolfram_alpha" && name != "code_interpreter")
        bad_request("builtin_tools", "must list brave_search, wolfram_alpha or code_interpreter");
      list.push_back(name);
    }
    if (!list.empty()) conv.builtin_tools = list, r.parse_tools = true;
  }
  if (r.parse_tools && herd::prompt_format(tok) != herd::PromptFormat::llama3)
    bad_request("tools", "the served model's prompt format has no tool calling (Llama 3.1's has)");
  if (herd::Status s = herd::render_prompt_ids(conv, tok, /*special_in_content=*/false, &r.gen.prompt); !s)
    bad_request("messages", s.message());
  if (!r.prefill.empty())
    if (herd::Status s = tok.encode(r.prefill, /*allow_special=*/false, /*add_bos=*/false, &r.gen.prompt); !s)
      throw ApiError(500, s.message(), "server_error");
  return r;
}

ApiRequest parse_chat_request(const json& body, const std::string& text, const herd::Engine& engine,
                              const RequestLimits& limits, const Retrieval& retrieval) {
  ApiRequest r = parse_chat_prompt(body, text, engine, limits, retrieval);
  Fields f(body);
  auto asked = f.integer("max_completion_tokens", 1, INT32_MAX);
  if (!asked) asked = f.integer("max_tokens", 1, INT32_MAX);
  fit_max_tokens(asked, "messages", engine, &r);
  return r;
}

ApiRequest parse_completion_request(const json& body, const herd::Engine& engine, const RequestLimits& limits) {
  Fields f(body);
  ApiRequest r;
  r.chat = false;
  f.string("model");
  parse_sampling(f, limits, &r);
  if (auto v = f.integer("logprobs", 0, 20)) r.logprobs = *v > 0, r.n_logprobs = int(*v);
  r.gen.sampling.logprobs = r.n_logprobs;
  if (auto v = f.boolean("echo")) r.echo = *v;
  if (f.get("suffix")) bad_request("suffix", "is not supported");
  if (auto v = f.integer("best_of", 1, limits.max_n); v && *v != r.gen.n_samples)
    bad_request("best_of", "is not supported beyond n");

  const json* prompt = f.get("prompt");
  if (!prompt) bad_request("prompt", "is required");
  const json* one = prompt;
  if (prompt->is_array() && !prompt->empty() && (*prompt)[0].is_string()) {
    if (prompt->size() != 1) bad_request("prompt", "one prompt per request (send several requests)");
    one = &(*prompt)[0];
  }
  const int64_t n_vocab = engine.info().n_vocab;
  if (one->is_string()) {
    const herd::Tokenizer& tok = tokenizer_of(engine);
    r.prompt_text = one->get<std::string>();
    // The client writes the whole prompt, so special-token text in it is honoured; BOS is added
    // when the model adds one and the text does not begin with it.
    if (herd::Status s = tok.encode(r.prompt_text, /*allow_special=*/true, /*add_bos=*/false, &r.gen.prompt); !s)
      bad_request("prompt", s.message());
    if (tok.adds_bos() && (r.gen.prompt.empty() || r.gen.prompt[0] != tok.bos_id()))
      r.gen.prompt.insert(r.gen.prompt.begin(), tok.bos_id());
  } else if (one->is_array()) {
    for (size_t i = 0; i < one->size(); ++i) {
      const json& id = (*one)[i];
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= n_vocab)
        bad_request("prompt[" + std::to_string(i) + "]", "must be a token id in [0, " + std::to_string(n_vocab) + ")");
      r.gen.prompt.push_back(id.get<int32_t>());
    }
    if (r.echo && engine.tokenizer())
      if (herd::Status s = engine.tokenizer()->decode(r.gen.prompt, &r.prompt_text); !s) bad_request("prompt", s.message());
  } else {
    bad_request("prompt", "must be a string, an array of one string, or an array of token ids");
  }
  if (r.gen.prompt.empty()) bad_request("prompt", "must not be empty");
  r.gen.prompt_logprobs = r.echo && r.logprobs && r.gen.prompt.size() > 1;
  if (r.gen.prompt_logprobs && r.gen.n_samples > 1) bad_request("echo", "with logprobs, n must be 1");
  fit_max_tokens(f.integer("max_tokens", 1, INT32_MAX).value_or(16), "prompt", engine, &r);
  return r;
}

}  // namespace herd_serve
