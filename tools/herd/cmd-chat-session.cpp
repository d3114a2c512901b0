// One `herd chat` conversation: each request renders the whole conversation and lets the
// engine's prefix cache skip what it has already computed; in the Llama 3.1 format replies stream
// through ToolCallStream so that raw call text never reaches the screen, and tool calls are
// answered by the configured commands (or the user) and generation goes on.
#include <algorithm>
#include <ctime>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cmd-chat.h"
#include "terminal-text.h"

namespace herd_cli::chat {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::ordered_json;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// The template's "Today Date" line: fixed for the session so that the prefix cache holds.
std::string today() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%d %b %Y", &tm);
  return buf;
}

// JSON text from the API back into a value; text that does not parse stays a string.
ordered_json json_value(const std::string& text) {
  ordered_json v = ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  return v.is_discarded() ? ordered_json(text) : v;
}

std::string tool_name(const herd::ToolDefinition& t) {
  const ordered_json j = json_value(t.json);
  const ordered_json& fn = j.contains("function") ? j["function"] : j;
  return fn.is_object() && fn.contains("name") && fn["name"].is_string() ? fn["name"].get<std::string>() : "?";
}

std::string rate(int64_t tokens, double s) {
  if (tokens <= 0 || s <= 0) return "-";
  std::ostringstream o;
  o.precision(1);
  o << std::fixed << double(tokens) / s << " tok/s";
  return o.str();
}

// The reply on its way to the screen: through the tool-call parser in the Llama 3.1 format, so
// that raw call text is never shown; as it comes in formats without tool calling (ChatML), where
// text that looks like a call is only text.
class ReplyText {
 public:
  ReplyText(bool tool_calls, const herd::ToolParseOptions& options) : tool_calls_(tool_calls), stream_(options) {}
  bool tool_calls() const { return tool_calls_; }
  void push(std::string_view text, std::string* visible) {
    if (tool_calls_) return stream_.push(text, visible);
    visible->append(text);
    raw_.append(text);
  }
  herd::ParsedCompletion finish(std::string* visible, bool stopped) {
    if (tool_calls_) return stream_.finish(visible);
    herd::ParsedCompletion p;
    p.content = raw_;
    p.end = stopped ? herd::CompletionEnd::eot : herd::CompletionEnd::length;
    return p;
  }

 private:
  bool tool_calls_;
  herd::ToolCallStream stream_;
  std::string raw_;
};

}  // namespace

struct ChatSession::Completion {
  herd::ParsedCompletion parsed;
};

ChatSession::ChatSession(herd::Engine& engine, const herd::Tokenizer& tokenizer, SessionOptions options,
                         ChatOutput out, Interrupts* interrupts)
    : engine_(engine), tokenizer_(tokenizer), options_(std::move(options)), out_(std::move(out)),
      interrupts_(interrupts) {
  eot_id_ = tokenizer_.id_of("<|eot_id|>");
  eom_id_ = tokenizer_.id_of("<|eom_id|>");
  // The reply's end marker decides the tool loop, so both must end a reply even when the model's
  // config lists neither as end-of-sequence.
  const auto& eos = engine_.info().eos_ids;
  for (const char* marker : {"<|eot_id|>", "<|eom_id|>"}) {
    const int32_t id = tokenizer_.id_of(marker);
    if (id >= 0 && std::find(eos.begin(), eos.end(), id) == eos.end()) options_.sampling.stop.push_back(marker);
  }
  if (options_.builtin_tools) parse_options_.builtin_tools = *options_.builtin_tools;
  conversation_.tools = options_.tools;
  conversation_.builtin_tools = options_.builtin_tools;
  conversation_.date_string = today();
  reset();
}

bool ChatSession::is_end_token(int32_t id) const {
  const auto& eos = engine_.info().eos_ids;
  return id == eot_id_ || id == eom_id_ || std::find(eos.begin(), eos.end(), id) != eos.end();
}

TurnEnd ChatSession::generate(bool first_round, Completion* c) {
  std::vector<int32_t> ids;
  if (herd::Status s = herd::render_prompt_ids(conversation_, tokenizer_, false, &ids); !s) {
    out_.info("cannot render the conversation: " + s.message());
    return TurnEnd::failed;
  }
  ReplyText stream(herd::prompt_format(tokenizer_) == herd::PromptFormat::llama3, parse_options_);
  std::string visible, shown;  // text the parser let through; all of it shown so far
  const auto show = [&] {
    out_.reply(visible);
    shown += visible;
    visible.clear();
  };
  bool ended = false;  // by the prefill
  if (first_round && !options_.prefill.empty()) {
    std::vector<int32_t> prefill;
    if (herd::Status s = tokenizer_.encode(options_.prefill, true, false, &prefill); !s) {
      out_.info("cannot encode --prefill: " + s.message());
      return TurnEnd::failed;
    }
    ids.insert(ids.end(), prefill.begin(), prefill.end());
    stream.push(options_.prefill, &visible);
    ended = !prefill.empty() && is_end_token(prefill.back());
  }
  const herd::EngineStats st = engine_.stats();
  const int64_t limit = std::min<int64_t>(engine_.info().max_context, st.kv_capacity_tokens);
  const int64_t room = limit - int64_t(ids.size());
  if (!ended && room < 1) {
    out_.info("the conversation (" + std::to_string(ids.size()) + " tokens) no longer fits the context of " +
              std::to_string(limit) + " tokens; /reset starts over (or /save it first)");
    return TurnEnd::overflow;
  }
  show();

  herd::FinishReason finish = herd::FinishReason::stop;
  if (!ended) {
    herd::GenerateRequest req;
    req.prompt = ids;
    req.max_tokens = int(options_.max_tokens > 0 ? std::min<int64_t>(options_.max_tokens, room) : room);
    req.sampling = options_.sampling;
    if (interrupts_) interrupts_->flag() = false;
    const auto start = Clock::now();
    herd::RequestId id = 0;
    if (herd::Status s = engine_.submit(req, &id); !s) {
      out_.info("the engine refused the request: " + s.message() + "; /reset starts over");
      return s.is_caller_error() ? TurnEnd::overflow : TurnEnd::failed;
    }
    if (interrupts_) {
      interrupts_->watch(&engine_, id);
      if (interrupts_->flag()) engine_.cancel(id);  // a Ctrl-C between submit and watch
    }
    if (out_.waiting) out_.waiting();
    auto first = start, last = start;
    int32_t last_token = -1;
    herd::Event ev;
    herd::Usage usage;
    while (engine_.next_event(id, &ev)) {
      if (ev.type == herd::Event::Type::token) {
        last = Clock::now();
        if (last_token < 0) first = last;
        last_token = ev.token;
      }
      if (ev.type == herd::Event::Type::finished) {
        finish = ev.finish_reason;
        usage = ev.usage;
        if (finish == herd::FinishReason::error) out_.info("generation failed: " + ev.error);
      }
      stream.push(ev.text, &visible);
      show();
    }
    if (interrupts_) interrupts_->clear();
    // The engine leaves the end token's text out of the reply; the parser needs it for `end`.
    if (stream.tool_calls() && finish == herd::FinishReason::stop && last_token >= 0 && is_end_token(last_token))
      stream.push(last_token == eom_id_ ? "<|eom_id|>" : "<|eot_id|>", &visible);
    last_ = {usage.prompt_tokens, usage.cached_prompt_tokens, usage.completion_tokens, seconds(first - start),
             seconds(last - first)};
    total_.prompt_tokens += last_.prompt_tokens;
    total_.cached_prompt_tokens += last_.cached_prompt_tokens;
    total_.completion_tokens += last_.completion_tokens;
    total_.prefill_s += last_.prefill_s;
    total_.decode_s += last_.decode_s;
    ++n_requests_;
    if (options_.verbose) {
      std::ostringstream o;
      o.precision(2);
      o << std::fixed << last_.completion_tokens << " tokens, " << rate(last_.completion_tokens - 1, last_.decode_s)
        << ", first token after " << last_.prefill_s << " s";
      out_.info(o.str());
    }
  }
  if (finish == herd::FinishReason::cancelled) {
    // Keep what was shown: the held-back rest may be raw call text, which is never printed.
    std::string held;
    c->parsed = stream.finish(&held, false);
    c->parsed.content = std::move(shown);
    c->parsed.tool_calls.clear();
    return TurnEnd::interrupted;
  }
  c->parsed = stream.finish(&visible, finish == herd::FinishReason::stop);
  out_.reply(visible);
  if (finish == herd::FinishReason::error) return TurnEnd::failed;
  const bool capped_by_context = options_.max_tokens == 0 || room < options_.max_tokens;
  if (finish == herd::FinishReason::length && capped_by_context)
    out_.info("the reply was cut off: the context is full; /reset starts over (or /save it first)");
  else if (finish == herd::FinishReason::length && options_.default_cap)
    out_.info("the reply was cut off at " + std::to_string(options_.max_tokens) + " tokens; -n sets the cap");
  if (!c->parsed.tool_calls.empty() || c->parsed.end == herd::CompletionEnd::eom)
    for (const std::string& d : c->parsed.diagnostics) out_.info("tool call parser: " + visible_text(d));
  return TurnEnd::done;
}

void ChatSession::show_tool_call(const herd::ToolCall& call) const {
  // The name is the model's text; the arguments' JSON escapes control characters itself.
  out_.info("tool call: " + visible_text(call.name) + " " + json_value(call.arguments).dump(2, ' ', false, ordered_json::error_handler_t::replace));
}

std::optional<std::string> ChatSession::tool_result(const herd::ToolCall& call, const AskResult& ask_result,
                                                    bool* is_json) {
  *is_json = false;
  const auto it = options_.tool_exec.find(call.name);
  if (it == options_.tool_exec.end()) {
    // Built-in tools herd answers itself (docs/tools.md); a --tool-exec command wins over them.
    std::optional<std::string> answer;
    if (call.name == "brave_search" && options_.docs) {
      answer = brave_search_result(*options_.docs, call, options_.docs_k);
      *is_json = true;
    } else if (call.name == "wolfram_alpha") {
      out_.info("tool wolfram_alpha: not configured (--tool-exec wolfram_alpha=COMMAND); the model is told so");
      answer = wolfram_alpha_unconfigured();
    } else if (call.name == "code_interpreter" && options_.code) {
      std::atomic<bool> no_stop{false};
      if (interrupts_) interrupts_->flag() = false;
      const auto code = json_value(call.arguments);
      answer = run_code(code.is_object() && code.contains("code") && code["code"].is_string()
                            ? code["code"].get<std::string>()
                            : std::string(),
                        *options_.code, interrupts_ ? interrupts_->flag() : no_stop);
      if (interrupts_ && interrupts_->flag()) {
        out_.info("tool code_interpreter: stopped; the reply ends here");
        return std::nullopt;
      }
    }
    if (!answer) return ask_result(call);
    out_.info("tool result: " + visible_text(shortened(*answer, 200)));
    return answer;
  }
  // The call as `herd toolcall` prints it (docs/cli.md).
  const ordered_json input = {{"name", call.name}, {"arguments", json_value(call.arguments)}, {"raw", call.raw}};
  std::atomic<bool> no_stop{false};
  if (interrupts_) interrupts_->flag() = false;
  const ToolOutcome r = run_tool_command(it->second, input.dump(-1, ' ', false, ordered_json::error_handler_t::replace) + "\n",
                                         options_.tool_limits, interrupts_ ? interrupts_->flag() : no_stop);
  if (!r.ok) {
    if (interrupts_ && interrupts_->flag()) {
      out_.info("tool " + visible_text(call.name) + ": stopped; the reply ends here");
      return std::nullopt;
    }
    out_.info("tool " + visible_text(call.name) + ": " + r.error + "; the model is told so and the chat goes on");
    return "error: the tool " + r.error;
  }
  std::string output = r.output;
  if (!output.empty() && output.back() == '\n') output.pop_back();  // as $(command) would
  out_.info("tool result: " + visible_text(shortened(output, 200)));
  return output;
}

TurnEnd ChatSession::user_turn(const std::string& text, const AskResult& ask_result) {
  const size_t mark = conversation_.messages.size();
  std::vector<herd::Passage> sources;
  if (options_.docs) {
    if (herd::Status s = options_.docs->search(text, options_.docs_k, &sources); !s)
      out_.info("cannot search the documents: " + s.message() + "; this turn has no sources");
    if (sources.empty()) out_.info("no passage of the documents matches this turn");
  }
  conversation_.messages.push_back({"user", sources.empty() ? text : herd::grounded_message(text, sources), false, {}});
  // After the reply, where its [n] point.
  const auto show_sources = [&](TurnEnd end) {
    if (sources.empty() || end == TurnEnd::overflow || end == TurnEnd::failed) return end;
    std::string list = "sources:";
    for (size_t i = 0; i < sources.size(); ++i)
      list += "\n  [" + std::to_string(i + 1) + "] " + visible_text(herd::passage_location(sources[i]));
    out_.info(list);
    return end;
  };
  for (int round = 0;; ++round) {
    Completion c;
    const TurnEnd end = generate(round == 0, &c);
    if (end == TurnEnd::overflow || end == TurnEnd::failed) {
      // A turn that never got an answer is taken back; tool results already given stay.
      if (round == 0) conversation_.messages.resize(mark);
      return end;
    }
    herd::ParsedCompletion& p = c.parsed;
    if (p.tool_calls.empty() || round >= options_.max_tool_rounds) {
      if (!p.tool_calls.empty())
        out_.info("not answering more tool calls: " + std::to_string(options_.max_tool_rounds) +
                  " rounds in one turn");
      // An interrupted reply keeps what was shown (docs/chat.md); one with nothing shown is dropped.
      if (end == TurnEnd::done || !p.content.empty()) conversation_.messages.push_back({"assistant", p.content, false, {}});
      return show_sources(end);
    }
    // The Llama 3.1 template renders one call per assistant message: one message and one
    // result per call, in order.
    for (size_t i = 0; i < p.tool_calls.size(); ++i) {
      const herd::ToolCall& call = p.tool_calls[i];
      conversation_.messages.push_back({"assistant", i == 0 ? p.content : "", false, {call}});
      show_tool_call(call);
      bool is_json = false;
      std::optional<std::string> result = tool_result(call, ask_result, &is_json);
      if (!result) return show_sources(TurnEnd::interrupted);
      conversation_.messages.push_back({"ipython", std::move(*result), is_json, {}});
    }
  }
}

void ChatSession::set_system(const std::string& text) {
  options_.system = text;
  auto& m = conversation_.messages;
  const bool has = !m.empty() && m.front().role == "system";
  if (text.empty() && has) m.erase(m.begin());
  else if (has) m.front().content = text;
  else if (!text.empty()) m.insert(m.begin(), {"system", text, false, {}});
}

void ChatSession::reset() {
  conversation_.messages.clear();
  set_system(options_.system);
}

herd::Status ChatSession::save(const std::string& path) const {
  ordered_json doc;
  doc["messages"] = ordered_json::array();
  for (const herd::Message& m : conversation_.messages) {
    ordered_json j = {{"role", m.role}, {"content", m.content_is_json ? json_value(m.content) : ordered_json(m.content)}};
    if (!m.tool_calls.empty()) {
      j["tool_calls"] = ordered_json::array();
      for (const herd::ToolCall& call : m.tool_calls)
        j["tool_calls"].push_back({{"name", call.name}, {"arguments", json_value(call.arguments)}});
    }
    doc["messages"].push_back(std::move(j));
  }
  if (conversation_.tools) {
    doc["tools"] = ordered_json::array();
    for (const herd::ToolDefinition& t : *conversation_.tools) doc["tools"].push_back(json_value(t.json));
  }
  if (conversation_.builtin_tools) doc["builtin_tools"] = *conversation_.builtin_tools;
  doc["date_string"] = conversation_.date_string;
  doc["tools_in_user_message"] = conversation_.tools_in_user_message;
  std::ofstream f(path, std::ios::binary);
  f << doc.dump(2, ' ', false, ordered_json::error_handler_t::replace) << "\n";
  f.close();
  if (!f) return herd::Status::invalid_input(path + ": cannot be written");
  return herd::Status();
}

herd::Status ChatSession::load(const std::string& path) {
  std::string json;
  if (herd::Status s = herd::read_file(path, herd::FileKind::json, &json); !s) return s;
  if (herd::Status s = herd::check_json_nesting(json, path); !s) return s;
  herd::Conversation loaded;
  if (herd::Status s = herd::parse_conversation(json, &loaded); !s)
    return herd::Status::invalid_input(path + ": " + s.message());
  loaded.add_generation_prompt = true;
  if (!loaded.tools) loaded.tools = conversation_.tools;  // the file's tools win; else keep --tools
  if (!loaded.builtin_tools) loaded.builtin_tools = conversation_.builtin_tools;
  conversation_ = std::move(loaded);
  const auto& m = conversation_.messages;
  options_.system = !m.empty() && m.front().role == "system" ? m.front().content : "";
  return herd::Status();
}

std::string ChatSession::describe_tools() const {
  std::string s;
  auto runner = [&](const std::string& name) {
    const auto it = options_.tool_exec.find(name);
    if (it != options_.tool_exec.end()) return "runs: " + it->second;
    if (name == "brave_search" && options_.docs) return std::string("answered from the document index");
    if (name == "wolfram_alpha") return std::string("not configured: the model is told so");
    if (name == "code_interpreter" && options_.code) return std::string("runs python3 in the sandbox");
    return std::string("result asked from you");
  };
  // Names from a loaded conversation are anyone's text: shown visibly.
  if (conversation_.tools)
    for (const herd::ToolDefinition& t : *conversation_.tools)
      s += "  " + visible_text(tool_name(t)) + " (" + runner(tool_name(t)) + ")\n";
  if (conversation_.builtin_tools)
    for (const std::string& name : *conversation_.builtin_tools)
      s += "  " + visible_text(name) + " (built-in; " + runner(name) + ")\n";
  return s.empty() ? "no tools (--tools FILE.json, --builtin-tools LIST)\n" : "tools:\n" + s;
}

std::string ChatSession::describe_stats() const {
  const herd::EngineStats st = engine_.stats();
  std::vector<int32_t> ids;
  const bool rendered = herd::render_prompt_ids(conversation_, tokenizer_, false, &ids).is_ok();
  std::ostringstream o;
  o << "last request: " << last_.prompt_tokens << " prompt tokens (" << last_.cached_prompt_tokens
    << " from the prefix cache, " << last_.prompt_tokens - last_.cached_prompt_tokens << " computed), "
    << last_.completion_tokens << " generated\n"
    << "  prefill " << rate(last_.prompt_tokens - last_.cached_prompt_tokens, last_.prefill_s) << ", decode "
    << rate(last_.completion_tokens - 1, last_.decode_s) << "\n"
    << "session: " << n_requests_ << " requests, " << total_.prompt_tokens << " prompt tokens ("
    << total_.cached_prompt_tokens << " cached), " << total_.completion_tokens << " generated\n"
    << "KV cache: " << st.kv_blocks_total - st.kv_blocks_free << " of " << st.kv_blocks_total << " blocks in use, "
    << st.kv_blocks_cached << " cached for reuse (" << st.block_size << " tokens each, " << st.kv_capacity_tokens
    << " tokens in all)\n"
    << "conversation: " << (rendered ? std::to_string(ids.size()) : "?") << " tokens of a "
    << std::min<int64_t>(engine_.info().max_context, st.kv_capacity_tokens) << "-token context\n";
  return o.str();
}

}  // namespace herd_cli::chat
