// herd chat: flags, loading, and the choice between the REPL and the piped mode (docs/chat.md).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cmd-chat.h"
#include "commands.h"
#include "terminal-text.h"

namespace herd_cli {
namespace {

struct ChatFlags {
  herd::EngineOptions engine;
  std::string model, tools_file, builtin_tools, output_cap = "64KiB";
  std::vector<std::string> tool_exec;
  std::string docs;
  chat::SessionOptions session;
  bool no_history = false, allow_unisolated_code = false;
};

// The options a chat was given, so that defaults fill only the rest.
struct GivenFlags {
  bool builtin_tools = false, repeat_penalty = false, max_tokens = false;
};

// A reply cap for chats without -n: long enough for any answer, short enough that a model
// repeating itself stops.
constexpr int kDefaultReplyCap = 1024;

// --tools FILE.json: a list of JSON-schema function definitions (or {"tools": [...]}).
herd::Status read_tools(const std::string& path, std::vector<herd::ToolDefinition>* out) {
  std::string text;
  if (herd::Status s = herd::read_file(path, herd::FileKind::json, &text); !s) return s;
  if (herd::Status s = herd::check_json_nesting(text, path); !s) return s;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return herd::Status::invalid_input(path + ": not valid JSON");
  if (j.is_object() && j.contains("tools")) j = j["tools"];
  if (!j.is_array()) return herd::Status::invalid_input(path + ": must be a list of tool definitions");
  for (const nlohmann::json& t : j) {
    if (!t.is_object()) return herd::Status::invalid_input(path + ": every tool definition must be a JSON object");
    out->push_back({t.dump()});
  }
  return herd::Status();
}

std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> names;
  std::istringstream in(list);
  for (std::string name; std::getline(in, name, ',');) {
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    if (!name.empty()) names.push_back(name);
  }
  return names;
}

int run_chat(ChatFlags& f, const GivenFlags& given) {
  for (const std::string& entry : f.tool_exec) {
    const size_t eq = entry.find('=');
    if (eq == 0 || eq == std::string::npos || eq + 1 == entry.size())
      throw CLI::ValidationError("--tool-exec", "'" + entry + "' is not NAME=COMMAND");
    f.session.tool_exec[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  f.session.tool_limits.output_cap = parse_size(f.output_cap, "--tool-output-cap");
  if (!(f.session.tool_limits.timeout_s > 0)) throw CLI::ValidationError("--tool-timeout", "must be > 0 seconds");
  if (!f.tools_file.empty()) {
    f.session.tools.emplace();
    if (int rc = report(read_tools(f.tools_file, &*f.session.tools))) return rc;
  }
  if (given.builtin_tools) f.session.builtin_tools = split_list(f.builtin_tools);

  std::unique_ptr<herd::Engine> engine;
  if (int rc = report(herd::Engine::load(f.model, f.engine, &engine))) return rc;
  if (!engine->tokenizer())
    return report(herd::Status::invalid_input(f.model + ": directory has no tokenizer.json or tokenizer.model; "
                                              "chat needs the model's tokenizer"));
  const herd::Tokenizer* tokenizer = engine->tokenizer();
  // The prompt format comes from the model's chat template; only Llama 3.1's has tool calling.
  const herd::PromptFormat format = herd::prompt_format(*tokenizer);
  if (format == herd::PromptFormat::unsupported)
    return report(herd::Status::invalid_input(f.model + ": its chat template is neither Llama 3.1's nor ChatML; "
                                              "use `herd generate -p` with a prompt you render yourself"));
  if (format != herd::PromptFormat::llama3 && (f.session.tools || f.session.builtin_tools || !f.tool_exec.empty())) {
    std::string flags;
    for (const auto& [flag, used] : {std::pair{"--tools", bool(f.session.tools)},
                                     {"--builtin-tools", bool(f.session.builtin_tools)},
                                     {"--tool-exec", !f.tool_exec.empty()}})
      if (used) flags += (flags.empty() ? "" : " and ") + std::string(flag);
    return report(herd::Status::invalid_input(f.model + ": this model's prompt format (ChatML) has no tool calling; "
                                              "drop " + flags));
  }
  if (!f.docs.empty()) {
    std::unique_ptr<herd::DocumentIndex> index;
    if (int rc = report(herd::DocumentIndex::open(f.docs, false, &index))) return rc;
    f.session.docs = std::move(index);
  }
  const auto& builtins = f.session.builtin_tools;
  if (builtins && std::find(builtins->begin(), builtins->end(), "code_interpreter") != builtins->end() &&
      !f.session.tool_exec.count("code_interpreter")) {
    // The model's code runs only when asked for by name, and only without network unless the
    // user accepts otherwise (docs/tools.md).
    const SandboxStatus& sandbox = sandbox_status();
    if (!sandbox.network_error.empty() && !f.allow_unisolated_code)
      return report(herd::Status::invalid_input(
          "code_interpreter: the sandbox cannot cut off the network here (python3 " + sandbox.network_error +
          "); pass --allow-unisolated-code to run the model's code with network access, or leave code_interpreter "
          "out of --builtin-tools"));
    if (!sandbox.network_error.empty())
      std::cerr << "herd: warning: code_interpreter runs the model's code WITH network access: " << sandbox.network_error
                << "\n";
    std::cerr << "code_interpreter: python3 in a fresh directory, " << f.session.tool_limits.timeout_s << " s, 1 GiB, "
              << (sandbox.network_error.empty() ? "no network" : "NETWORK REACHABLE") << ", "
              << (sandbox.confined_writes ? "writes only in its directory" : "writes not confined (no Landlock)")
              << (sandbox.as_nobody ? ", as nobody" : "") << "\n";
    f.session.code = chat::code_limits(f.session.tool_limits, sandbox.network_error.empty());
  }
  const ChatSettings settings = chat::chat_settings(engine->info(), f.session.sampling, given.repeat_penalty,
                                                    given.max_tokens ? std::optional(f.session.max_tokens) : std::nullopt);
  f.session.sampling = settings.sampling;
  f.session.max_tokens = settings.max_tokens;
  f.session.default_cap = settings.default_cap;
  // What the chat runs with, before the first prompt: a newcomer sees the model, its limits and
  // the sampling in force (the same lines as `herd info`).
  std::cerr << summary_text(model_summary(*engine, tokenizer, settings)) << std::flush;

  // A tool command that stops reading its input must not kill the chat.
  signal(SIGPIPE, SIG_IGN);
  const bool interactive = isatty(STDIN_FILENO);
  chat::ChatOutput out;
  if (interactive) {
    // The reply's text reaches the terminal with its control characters made visible, all but
    // newlines and tabs. While a request waits for its first token, "..." shows that it runs.
    struct Screen {
      bool at_line_start = true, waiting = false;
      void unwait() {
        if (waiting) std::fputs("\b\b\b   \b\b\b", stdout);
        waiting = false;
      }
    };
    auto screen = std::make_shared<Screen>();
    out.reply = [screen](const std::string& s) {
      if (s.empty()) return;
      screen->unwait();
      const std::string shown = visible_text(s, /*keep_lines=*/true);
      std::fwrite(shown.data(), 1, shown.size(), stdout);
      std::fflush(stdout);
      screen->at_line_start = s.back() == '\n';
    };
    out.info = [screen](const std::string& s) {
      screen->unwait();
      if (!screen->at_line_start) std::fputc('\n', stdout);
      screen->at_line_start = true;
      std::fflush(stdout);
      std::cerr << "[" << visible_text(s, /*keep_lines=*/true) << "]\n" << std::flush;
    };
    out.waiting = [screen] {
      std::fputs("...", stdout);
      std::fflush(stdout);
      screen->waiting = true;
    };
  } else {
    // Stdout is the replies' data, byte for byte; notices on stderr are made visible.
    out.reply = [](const std::string& s) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    };
    out.info = [](const std::string& s) {
      std::cerr << "herd: " << visible_text(s, /*keep_lines=*/true) << "\n" << std::flush;
    };
  }
  // Piped, Ctrl-C keeps its default (exit, 130): nobody is there to continue the chat.
  std::unique_ptr<chat::Interrupts> interrupts;
  if (interactive) interrupts = std::make_unique<chat::Interrupts>();
  chat::ChatSession session(*engine, *tokenizer, f.session, out, interrupts.get());
  std::unique_ptr<chat::LineReader> reader =
      chat::make_line_reader(interactive, interrupts.get(), f.no_history ? "" : chat::default_history_file());
  return interactive ? chat::run_interactive(session, *reader, *interrupts) : chat::run_piped(session, *reader);
}

}  // namespace

namespace chat {

ChatSettings chat_settings(const herd::ModelInfo& info, const herd::SamplingOptions& given, bool penalty_given,
                           std::optional<int> max_tokens) {
  ChatSettings c;
  c.sampling = given;
  herd::SamplingOptions& s = c.sampling;
  const bool model_has = info.default_do_sample || info.default_temperature || info.default_top_p || info.default_top_k;
  if (model_has) {
    // The engine's rule for a model's defaults (herd/engine.h), spelled out so that it can be shown.
    const bool sample = info.default_do_sample.value_or(false);
    if (!s.temperature) s.temperature = sample ? info.default_temperature.value_or(1.0f) : 0.0f;
    if (!s.top_p) s.top_p = sample ? info.default_top_p.value_or(1.0f) : 1.0f;
    if (!s.top_k) s.top_k = sample ? info.default_top_k.value_or(0) : 0;
    c.source = "the model's defaults";
  } else {
    const bool any_unset = !s.temperature || !s.top_p || !penalty_given;
    const bool any_given = s.temperature || s.top_p || penalty_given;
    // --temp 0 asks for plain greedy decoding: no penalty unless one is given too (a penalty
    // over the prompt also keeps the model from copying from it).
    if (!penalty_given && s.temperature.value_or(1.0f) > 0) s.repetition_penalty = 1.1f;
    if (!s.temperature) s.temperature = 0.7f;
    if (!s.top_p) s.top_p = 0.9f;
    if (!s.top_k) s.top_k = 0;
    c.source = !any_unset ? "the flags"
               : any_given ? "the flags, and herd chat's defaults for the rest: the model has none"
                           : "herd chat's defaults: the model has none";
  }
  c.default_cap = !max_tokens;
  c.max_tokens = max_tokens ? *max_tokens : kDefaultReplyCap;
  return c;
}

}  // namespace chat

void add_chat_command(CLI::App& app, int& rc) {
  auto f = std::make_shared<ChatFlags>();
  CLI::App* cmd = app.add_subcommand(
      "chat",
      std::string("Chat with a Llama 3.1 model, with its tool loop (docs/chat.md). Interactive on a terminal: ") +
          (chat::have_line_editing() ? "line editing and history (libedit)"
                                     : "plain line reading (this build has no libedit, so no line editing)") +
          ", /help for commands, Ctrl-C stops a reply. Piped: each stdin line is one user turn, and each reply is "
          "followed by a line holding only 0x1E (ASCII record separator); everything else goes to stderr.");
  cmd->add_option("-m,--model", f->model, "Model directory with its tokenizer, or a GGUF file; the prompt format (Llama 3.1 or ChatML) follows its chat template")->required();
  cmd->add_option("--system", f->session.system, "System message");
  cmd->add_option("--tools", f->tools_file, "JSON file: a list of JSON-schema function definitions");
  auto* builtin = cmd->add_option("--builtin-tools", f->builtin_tools,
                                  "Comma-separated built-in tools the model is told about: brave_search (answered from "
                                  "--docs), wolfram_alpha (answers 'not configured'), code_interpreter (runs python3 in "
                                  "a sandbox: docs/tools.md); --tool-exec overrides any of them");
  cmd->add_option("--docs", f->docs,
                  "A document index (herd index build): each user turn gets its best passages as numbered sources "
                  "to cite (docs/rag.md), and brave_search is answered from it");
  cmd->add_option("--docs-k", f->session.docs_k, "Passages per user turn and per brave_search call")
      ->check(int_range(1, 20))
      ->capture_default_str();
  cmd->add_flag("--allow-unisolated-code", f->allow_unisolated_code,
                "Run code_interpreter even where the kernel cannot cut off its network (the code can then reach "
                "the network; a warning is printed)");
  cmd->add_option("--tool-exec", f->tool_exec,
                  "NAME=COMMAND (repeatable): answer tool NAME by running COMMAND with /bin/sh -c, the call's JSON "
                  "(as `herd toolcall` prints it) on stdin, its stdout as the result. Without it, you are asked "
                  "for the result (piped: the next stdin line)");
  cmd->add_option("--tool-timeout", f->session.tool_limits.timeout_s, "Seconds a tool command may run")->capture_default_str();
  cmd->add_option("--tool-output-cap", f->output_cap, "Most bytes a tool command may write, e.g. 64KiB")->capture_default_str();
  cmd->add_option("--prefill", f->session.prefill,
                  "Start each reply with TEXT (special-token text such as <|python_tag|> is honoured); a prefill "
                  "ending in <|eom_id|> or <|eot_id|> is the whole reply");
  auto* max_tokens = cmd->add_option("-n,--n-predict,--max-tokens", f->session.max_tokens,
                                     "Most tokens per reply (default " + std::to_string(kDefaultReplyCap) +
                                         "; 0: until the context is full)")
                         ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--no-history", f->no_history,
                "Keep no input history file (default: ${XDG_DATA_HOME:-~/.local/share}/herd/history)");
  cmd->add_flag("--verbose", f->session.verbose, "After each reply, a line with its tokens, tok/s and time to first token");
  add_sampling_flags(cmd, f->session.sampling);
  add_engine_flags(cmd, f->engine);
  cmd->callback([f, &rc, cmd, builtin, max_tokens] {
    rc = run_chat(*f, {builtin->count() > 0, cmd->get_option("--repeat-penalty")->count() > 0, max_tokens->count() > 0});
  });
}

}  // namespace herd_cli
