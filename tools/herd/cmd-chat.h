// `herd chat` (docs/chat.md): the pieces shared by its files. cmd-chat.cpp holds the flags,
// cmd-chat-session.cpp one conversation and its tool loop (tool commands run through
// subprocess.h), cmd-chat-input.cpp line reading and Ctrl-C, cmd-chat-repl.cpp the two front ends.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "herd/herd.h"
#include "model-summary.h"
#include "subprocess.h"

namespace herd_cli::chat {

// --- tool commands: `/bin/sh -c command` with the call on stdin, under a timeout and an output
// cap (subprocess.h)

using ToolLimits = SubprocessLimits;
using ToolOutcome = SubprocessResult;
inline ToolOutcome run_tool_command(const std::string& command, const std::string& input, const ToolLimits& limits,
                                    const std::atomic<bool>& stop) {
  return run_subprocess(command, input, limits, stop);
}

// --- what the chat answers itself (cmd-chat-builtin.cpp, docs/rag.md, docs/tools.md)

// brave_search answered from local documents: the JSON text of {"query", "top_k": [{"type",
// "title", "url", "description"}]}, the shape of llama-stack's cleaned Brave results.
std::string brave_search_result(const herd::Retriever& docs, const herd::ToolCall& call, int k);
// wolfram_alpha with nothing configured for it: a JSON error the model can read.
std::string wolfram_alpha_unconfigured();
// The limits code_interpreter's code runs under: the chat's timeout and output cap, plus the
// sandbox (network cut off only when `isolate_network`).
ToolLimits code_limits(const ToolLimits& tool_limits, bool isolate_network);
// The code run by python3 in the sandbox; its stdout and stderr (capped) are the result, followed
// by a line saying why when it failed.
std::string run_code(const std::string& code, const ToolLimits& limits, const std::atomic<bool>& stop);

// --- Ctrl-C and line input (cmd-chat-input.cpp)

// Turns SIGINT into actions outside the signal handler: a watcher thread cancels the request in
// flight (the engine's calls are not async-signal-safe) and raises the flags below.
class Interrupts {
 public:
  Interrupts();  // installs the SIGINT handler
  ~Interrupts();
  Interrupts(const Interrupts&) = delete;
  Interrupts& operator=(const Interrupts&) = delete;

  // The request a Ctrl-C cancels from now on; clear() when it has finished.
  void watch(herd::Engine* engine, herd::RequestId id);
  void clear();
  // Set by every Ctrl-C; whoever acts on one resets it.
  std::atomic<bool>& flag() { return flag_; }
  // Readable after a Ctrl-C, so that a plain blocking read can wake up (drained by the reader).
  int wake_fd() const { return wake_[0]; }

 private:
  void watch_loop();
  std::mutex mu_;
  herd::Engine* engine_ = nullptr;
  herd::RequestId id_ = 0;
  std::atomic<bool> flag_{false};
  int wake_[2] = {-1, -1};
  std::thread watcher_;
};

enum class ReadStatus { line, interrupted, eof };

class LineReader {
 public:
  virtual ~LineReader() = default;
  // One line without its newline. `interrupted`: Ctrl-C at this prompt (the typed text is dropped).
  virtual ReadStatus read(const std::string& prompt, std::string* line) = 0;
  virtual void remember(const std::string& entry) = 0;  // history
};
// libedit on a terminal when herd was built with it; plain reads of fd 0 otherwise (the
// interactive fallback, and always for piped input). history_file: where libedit's history is
// kept across sessions ("" keeps none).
std::unique_ptr<LineReader> make_line_reader(bool interactive, Interrupts* interrupts, const std::string& history_file);
bool have_line_editing();
// ${XDG_DATA_HOME:-~/.local/share}/herd/history, "" when neither variable is set.
std::string default_history_file();

// Bracketed paste: a terminal that supports it wraps pasted text in these, so that a pasted
// block with newlines can be one message.
constexpr std::string_view kPasteStart = "\x1b[200~", kPasteEnd = "\x1b[201~";

// --- the settings a chat starts with (cmd-chat.cpp)

// given: the sampling flags; penalty_given: whether --repeat-penalty was; max_tokens: -n.
// The model's sampling defaults fill what the flags leave unset; a model without any gets herd
// chat's (temperature 0.7, top-p 0.9, repetition penalty 1.1, the penalty not with --temp 0),
// since greedy decoding of a small model tends to repeat itself forever. Without -n a reply is
// capped at 1024 tokens.
ChatSettings chat_settings(const herd::ModelInfo& info, const herd::SamplingOptions& given, bool penalty_given,
                           std::optional<int> max_tokens);

// --- one conversation (cmd-chat-session.cpp)

struct SessionOptions {
  std::string system;
  std::optional<std::vector<herd::ToolDefinition>> tools;
  std::optional<std::vector<std::string>> builtin_tools;
  std::map<std::string, std::string> tool_exec;  // tool name -> shell command
  ToolLimits tool_limits;
  std::string prefill;
  int max_tokens = 0;  // per reply; 0: until the context is full
  bool default_cap = false;  // max_tokens is herd chat's default, not -n: say so when a reply hits it
  herd::SamplingOptions sampling;
  bool verbose = false;  // a timing line after each reply
  int max_tool_rounds = 8;  // tool calls answered within one user turn
  // --docs: passages put into each user turn, and brave_search's answers.
  std::shared_ptr<const herd::Retriever> docs;
  int docs_k = 3;
  // code_interpreter was named in --builtin-tools: its code runs under these limits.
  std::optional<ToolLimits> code;
};

// Where the chat writes: the reply text, and everything else (notices, tool calls, command
// output). Non-interactive mode keeps stdout for replies only.
// info's text may hold text from the model or a tool: the front end shows its control
// characters visibly, all but newlines and tabs (single-line parts are visible_text already).
struct ChatOutput {
  std::function<void(const std::string&)> reply;
  std::function<void(const std::string&)> info;
  std::function<void()> waiting;  // optional: a request is out and no text has come yet
};

struct RequestStats {
  int64_t prompt_tokens = 0, cached_prompt_tokens = 0, completion_tokens = 0;
  double prefill_s = 0, decode_s = 0;  // submit -> first token; first -> last token
};

enum class TurnEnd { done, interrupted, overflow, failed };

class ChatSession {
 public:
  // Asked for a tool's result when no command is configured for it; nullopt gives up the turn.
  using AskResult = std::function<std::optional<std::string>(const herd::ToolCall&)>;

  ChatSession(herd::Engine& engine, const herd::Tokenizer& tokenizer, SessionOptions options, ChatOutput out,
              Interrupts* interrupts);

  // One user message and the assistant's reply, tool rounds included.
  TurnEnd user_turn(const std::string& text, const AskResult& ask_result);

  void set_system(const std::string& text);
  const std::string& system() const { return options_.system; }
  void reset();  // every message but the system one
  herd::Status save(const std::string& path) const;
  herd::Status load(const std::string& path);
  std::string describe_tools() const;
  std::string describe_stats() const;

 private:
  struct Completion;
  TurnEnd generate(bool first_round, Completion* c);
  void show_tool_call(const herd::ToolCall& call) const;
  // A command's result is shown, shortened, once it is there.
  // *is_json: the result is JSON text for the template to write as JSON (brave_search's).
  std::optional<std::string> tool_result(const herd::ToolCall& call, const AskResult& ask_result, bool* is_json);
  bool is_end_token(int32_t id) const;

  herd::Engine& engine_;
  const herd::Tokenizer& tokenizer_;
  SessionOptions options_;
  ChatOutput out_;
  Interrupts* interrupts_;
  herd::Conversation conversation_;
  herd::ToolParseOptions parse_options_;
  int32_t eot_id_ = -1, eom_id_ = -1;
  RequestStats last_, total_;
  int64_t n_requests_ = 0;
};

// --- front ends (cmd-chat-repl.cpp)

int run_interactive(ChatSession& session, LineReader& reader, Interrupts& interrupts);
int run_piped(ChatSession& session, LineReader& reader);

}  // namespace herd_cli::chat
