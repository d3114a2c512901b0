#include "generation.h"

#include <random>

#include "api-error.h"

namespace herd_serve {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string random_suffix(size_t n) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string s(n, ' ');
  for (char& c : s) c = kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  return s;
}

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

// One choice (one engine request) of the API request.
struct Generation::Choice {
  int index = 0;
  herd::RequestId id = 0;
  std::optional<herd::ToolCallStream> tools;  // when the request parses tool calls
  std::string content;                        // what the reply shows (tool calls taken out)
  std::vector<herd::ToolCall> calls;
  json logprobs = json::array();                              // chat: its "content" list
  json completion_logprobs = {{"tokens", json::array()},    // completions: the legacy shape
                              {"token_logprobs", json::array()},
                              {"top_logprobs", json::array()},
                              {"text_offset", json::array()}};
  int64_t text_offset = 0;
  int64_t completion_tokens = 0;
  const char* finish_reason = nullptr;
  bool finished = false;
  Clock::time_point last_token;
};

Generation::Generation(herd::Engine& engine, ApiRequest request, std::string model_name, Metrics& metrics)
    : engine_(engine), req_(std::move(request)), model_(std::move(model_name)), metrics_(metrics) {
  id_ = (req_.chat ? "chatcmpl-" : "cmpl-") + random_suffix(24);
  created_ = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  start_ = Clock::now();
  herd::RequestId first = 0;
  if (herd::Status s = engine_.submit(req_.gen, &first); !s) throw from_status(s);
  choices_.resize(size_t(req_.gen.n_samples));
  for (size_t i = 0; i < choices_.size(); ++i) {
    Choice& c = choices_[i];
    c.index = int(i);
    c.id = first + i;
    c.last_token = start_;
    ids_.push_back(c.id);
    if (req_.parse_tools) {
      c.tools.emplace(req_.tool_options);
      std::string ignored;  // the forced start of a call is never content on its own
      c.tools->push(req_.prefill, &ignored);
      c.content += ignored;
    }
  }
}

Generation::~Generation() {
  // Whatever is still running (the client went away, or the server stops) ends here.
  for (const Choice& c : choices_)
    if (!c.finished) engine_.release(c.id);
}

int64_t Generation::completion_tokens() const {
  int64_t n = 0;
  for (const Choice& c : choices_) n += c.completion_tokens;
  return n;
}

std::string Generation::piece(int32_t id) const {
  std::string text;
  if (engine_.tokenizer()) (void)engine_.tokenizer()->decode({id}, &text);
  return text;
}

void Generation::add_sse(const json& j, std::string* sse) const { *sse += "data: " + dump(j) + "\n\n"; }

json Generation::chunk(const Choice& c, json delta, const char* finish_reason) const {
  json choice = {{"index", c.index}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
  if (finish_reason) choice["finish_reason"] = finish_reason;
  if (req_.chat) choice["delta"] = std::move(delta);
  else choice["text"] = std::move(delta);
  return {{"id", id_}, {"object", req_.chat ? "chat.completion.chunk" : "text_completion"}, {"created", created_},
          {"model", model_}, {"choices", json::array({choice})}};
}

json Generation::logprob_entry(const herd::Event& ev) const {
  const std::string text = piece(ev.token);
  json top = json::array();
  for (size_t k = 0; k < ev.top_logprobs.size() && int(k) < req_.n_logprobs; ++k) {
    const std::string alt = piece(ev.top_logprobs[k].token);
    top.push_back({{"token", alt}, {"logprob", ev.top_logprobs[k].logprob}, {"bytes", bytes_of(alt)}});
  }
  return {{"token", text}, {"logprob", ev.logprob}, {"bytes", bytes_of(text)}, {"top_logprobs", top}};
}

bool Generation::poll(std::chrono::milliseconds timeout, std::string* sse) {
  if (done_) return false;
  if (req_.stream && !started_) {
    // Chat streams open each choice with its role; completions with echo, with the prompt.
    started_ = true;
    for (const Choice& c : choices_) {
      if (req_.chat) {
        json j = chunk(c, {{"role", "assistant"}, {"content", c.content}}, nullptr);
        if (req_.retrieval) j["sources"] = sources();
        add_sse(j, sse);
      }
      else if (req_.echo) add_sse(chunk(c, json(req_.prompt_text), nullptr), sse);
    }
  }
  herd::Event ev;
  auto id = engine_.wait_any(ids_, timeout, &ev);
  // Then whatever else is ready, without waiting, so one write carries a step's tokens.
  while (id) {
    Choice& c = choices_[size_t(*id - choices_.front().id)];
    take(c, std::move(ev), sse);
    id = engine_.wait_any(ids_, std::chrono::milliseconds(0), &ev);
  }
  for (const Choice& c : choices_)
    if (!c.finished) return true;
  done_ = true;
  metrics_.tokens(prompt_tokens_, cached_tokens_, completion_tokens());
  if (req_.stream && !error_) {
    if (req_.include_usage) {
      json u = {{"id", id_}, {"object", req_.chat ? "chat.completion.chunk" : "text_completion"}, {"created", created_},
                {"model", model_}, {"choices", json::array()}, {"usage", usage()}};
      add_sse(u, sse);
    }
    *sse += "data: [DONE]\n\n";
  }
  return false;
}

void Generation::take(Choice& c, herd::Event&& ev, std::string* sse) {
  if (ev.type == herd::Event::Type::prompt) {  // completions with echo and logprobs: choice 0 only
    json& lp = c.completion_logprobs;
    const std::vector<int32_t>& prompt = req_.gen.prompt;
    for (size_t i = 0; i < prompt.size(); ++i) {
      const std::string text = piece(prompt[i]);
      lp["tokens"].push_back(text);
      lp["token_logprobs"].push_back(i == 0 ? json(nullptr) : json(ev.prompt_logprobs[i - 1].logprob));
      lp["top_logprobs"].push_back(nullptr);
      lp["text_offset"].push_back(c.text_offset);
      c.text_offset += int64_t(text.size());
    }
    return;
  }
  if (ev.type == herd::Event::Type::finished) return finish(c, ev, sse);

  const Clock::time_point now = Clock::now();
  if (!first_token_seen_) metrics_.time_to_first_token(seconds_since(start_)), first_token_seen_ = true;
  else if (c.completion_tokens > 0) metrics_.inter_token(std::chrono::duration<double>(now - c.last_token).count());
  c.last_token = now;
  ++c.completion_tokens;

  std::string visible;
  if (c.tools) c.tools->push(ev.text, &visible);
  else visible = ev.text;
  c.content += visible;
  json lp = nullptr;
  if (req_.logprobs) {
    if (req_.chat) {
      json entry = logprob_entry(ev);
      c.logprobs.push_back(entry);
      lp = {{"content", json::array({entry})}};
    } else {
      const std::string text = piece(ev.token);
      json top = json::object();
      for (size_t k = 0; k < ev.top_logprobs.size() && int(k) < req_.n_logprobs; ++k)
        top[piece(ev.top_logprobs[k].token)] = ev.top_logprobs[k].logprob;
      lp = {{"tokens", {text}}, {"token_logprobs", {ev.logprob}}, {"top_logprobs", {top}}, {"text_offset", {c.text_offset}}};
      for (const char* k : {"tokens", "token_logprobs", "top_logprobs", "text_offset"}) c.completion_logprobs[k].push_back(lp[k][0]);
      c.text_offset += int64_t(text.size());
    }
  }
  if (req_.stream && (!visible.empty() || req_.logprobs)) {
    json j = chunk(c, req_.chat ? json{{"content", visible}} : json(visible), nullptr);
    j["choices"][0]["logprobs"] = lp;
    add_sse(j, sse);
  }
}

void Generation::finish(Choice& c, const herd::Event& ev, std::string* sse) {
  c.finished = true;
  if (c.index == 0) {
    prompt_tokens_ = ev.usage.prompt_tokens;
    cached_tokens_ = ev.usage.cached_prompt_tokens;
  }
  if (ev.finish_reason == herd::FinishReason::error || ev.finish_reason == herd::FinishReason::cancelled) {
    const std::string why = ev.finish_reason == herd::FinishReason::error ? ev.error : "the request was cancelled";
    if (!error_ && req_.stream) add_sse(ApiError(500, why, "server_error").body(), sse);
    if (!error_) error_ = why;
    return;
  }
  std::string visible;
  if (c.tools) {
    c.tools->push(ev.text, &visible);  // what the detokenizer held back
    // The end marker tells the parser how the turn ended (a call expects <|eom_id|>); it is
    // never shown.
    const herd::Tokenizer* tok = engine_.tokenizer();
    if (tok && ev.stop_token >= 0 && ev.stop_token == tok->id_of("<|eom_id|>")) c.tools->push("<|eom_id|>", &visible);
    else if (tok && ev.stop_token >= 0 && ev.stop_token == tok->id_of("<|eot_id|>")) c.tools->push("<|eot_id|>", &visible);
    herd::ParsedCompletion parsed = c.tools->finish(&visible);
    c.calls = std::move(parsed.tool_calls);
  } else {
    visible = ev.text;  // what the detokenizer held back
  }
  c.content += visible;
  c.finish_reason = !c.calls.empty() ? "tool_calls" : ev.finish_reason == herd::FinishReason::length ? "length" : "stop";
  if (!req_.stream) return;
  if (!visible.empty()) add_sse(chunk(c, req_.chat ? json{{"content", visible}} : json(visible), nullptr), sse);
  if (!c.calls.empty()) {
    json calls = json::array();
    for (size_t k = 0; k < c.calls.size(); ++k)
      calls.push_back({{"index", k}, {"id", "call_" + random_suffix(24)}, {"type", "function"},
                       {"function", {{"name", c.calls[k].name}, {"arguments", c.calls[k].arguments}}}});
    add_sse(chunk(c, {{"tool_calls", calls}}, nullptr), sse);
  }
  add_sse(chunk(c, req_.chat ? json::object() : json(""), c.finish_reason), sse);
}

json Generation::usage() const {
  const int64_t completion = completion_tokens();
  return {{"prompt_tokens", prompt_tokens_}, {"completion_tokens", completion}, {"total_tokens", prompt_tokens_ + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached_tokens_}}}};
}

json Generation::response() const {
  if (error_) throw ApiError(500, *error_, "server_error");
  json choices = json::array();
  for (const Choice& c : choices_) {
    json choice = {{"index", c.index}, {"finish_reason", c.finish_reason}, {"logprobs", nullptr}};
    if (req_.chat) {
      json message = {{"role", "assistant"}, {"content", c.content}};
      if (!c.calls.empty()) {
        if (c.content.empty()) message["content"] = nullptr;
        json calls = json::array();
        for (const herd::ToolCall& call : c.calls)
          calls.push_back({{"id", "call_" + random_suffix(24)}, {"type", "function"},
                           {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
        message["tool_calls"] = calls;
      }
      choice["message"] = message;
      if (req_.logprobs) choice["logprobs"] = {{"content", c.logprobs}};
    } else {
      choice["text"] = (req_.echo ? req_.prompt_text : "") + c.content;
      if (req_.logprobs) choice["logprobs"] = c.completion_logprobs;
    }
    choices.push_back(choice);
  }
  json out = {{"id", id_}, {"object", req_.chat ? "chat.completion" : "text_completion"}, {"created", created_},
              {"model", model_}, {"choices", choices}, {"usage", usage()}};
  if (req_.retrieval) out["sources"] = sources();
  return out;
}

json Generation::sources() const {
  json list = json::array();
  for (size_t i = 0; i < req_.sources.size(); ++i) {
    const herd::Passage& p = req_.sources[i];
    list.push_back({{"index", i + 1}, {"location", herd::passage_location(p)}, {"path", p.path},
                    {"line_begin", p.line_begin}, {"line_end", p.line_end}, {"score", p.score}});
  }
  return list;
}

}  // namespace herd_serve
