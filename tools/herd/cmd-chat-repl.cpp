// The two front ends of `herd chat`: the interactive REPL (a terminal on stdin) and the piped
// mode, where each line is one user turn and each reply ends with a line holding only 0x1E.
// In both, a `"""` block is one message.
#include <cstdio>
#include <iostream>

#include "cmd-chat.h"
#include "terminal-text.h"

namespace herd_cli::chat {
namespace {

constexpr const char* kHelp =
    "/system [TEXT]  show or set the system message (empty TEXT: none)\n"
    "/reset          start over (the system message stays)\n"
    "/save FILE      write the conversation as `herd prompt --conversation` JSON\n"
    "/load FILE      read such a file (its tools replace --tools when it has any)\n"
    "/tools          the tools the model is told about, and what answers them\n"
    "/stats          tokens, prefill and decode speed, KV blocks, prefix-cache hits\n"
    "/help           this list\n"
    "/quit           leave (also Ctrl-D, or Ctrl-C twice at an empty prompt)\n";

enum class CommandResult { handled, quit };

std::string argument_of(const std::string& line, size_t name_length) {
  std::string arg = line.substr(std::min(line.size(), name_length));
  arg.erase(0, arg.find_first_not_of(" \t"));
  return arg;
}

CommandResult run_command(ChatSession& session, const std::string& line, const std::function<void(const std::string&)>& say) {
  const std::string name = line.substr(0, line.find_first_of(" \t"));
  const std::string arg = argument_of(line, name.size());
  if (name == "/quit" || name == "/exit") return CommandResult::quit;
  if (name == "/help") say(kHelp);
  else if (name == "/reset") {
    session.reset();
    say("the conversation starts over\n");
  } else if (name == "/system") {
    if (line.size() > name.size()) {
      session.set_system(arg);
      say(arg.empty() ? "no system message\n" : "system message set\n");
    } else {
      say(session.system().empty() ? "no system message\n" : "system: " + visible_text(session.system(), /*keep_lines=*/true) + "\n");
    }
  } else if (name == "/save" || name == "/load") {
    if (arg.empty()) {
      say("usage: " + name + " FILE\n");
      return CommandResult::handled;
    }
    const herd::Status s = name == "/save" ? session.save(arg) : session.load(arg);
    say(s ? (name == "/save" ? "saved " : "loaded ") + arg + "\n" : "error: " + s.message() + "\n");
  } else if (name == "/tools") {
    say(session.describe_tools());
  } else if (name == "/stats") {
    say(session.describe_stats());
  } else {
    say("unknown command " + name + "; /help lists them\n");
  }
  return CommandResult::handled;
}

const std::string kMore = "... ";  // the prompt of a message's next line
constexpr std::string_view kQuotes = "\"\"\"";

// Ollama's multi-line notation: a line starting with """ opens a block, the next line ending in
// """ closes it (""" on both ends of one line: a one-line block). The text around the quotes on
// those two lines belongs to the message; the lines between keep their newlines. first: the
// opening line. End of input closes the block (what was read is kept).
ReadStatus read_block(LineReader& reader, const std::string& first, const std::string& prompt, std::string* text) {
  std::string line = first.substr(kQuotes.size());
  std::vector<std::string> lines;
  for (bool opening = true;; opening = false) {
    if (line.ends_with(kQuotes)) {
      line.resize(line.size() - kQuotes.size());
      if (!line.empty()) lines.push_back(line);
      break;
    }
    if (!line.empty() || !opening) lines.push_back(line);
    const ReadStatus r = reader.read(prompt, &line);
    if (r == ReadStatus::interrupted) {
      *text = first;  // something was typed: this Ctrl-C drops the block, it does not arm quitting
      return r;
    }
    if (r == ReadStatus::eof) break;
  }
  text->clear();
  for (size_t i = 0; i < lines.size(); ++i) *text += (i ? "\n" : "") + lines[i];
  return ReadStatus::line;
}

// A message: a """ block, a bracketed paste (read plainly, the markers arrive inside the lines:
// the lines up to the end marker are one message), or lines ending in a backslash continued on
// the next one.
ReadStatus read_message(LineReader& reader, const std::string& prompt, std::string* text) {
  text->clear();
  std::string line;
  for (const std::string* p = &prompt;; ) {
    const ReadStatus r = reader.read(*p, &line);
    if (r != ReadStatus::line) {
      if (r == ReadStatus::interrupted) *text += line;  // the caller wants to know if anything was typed
      return r;
    }
    if (p == &prompt && line.starts_with(kQuotes)) return read_block(reader, line, kMore, text);
    if (const size_t start = line.find(kPasteStart); start != std::string::npos) {
      line.erase(start, kPasteStart.size());
      while (line.find(kPasteEnd) == std::string::npos) {
        std::string next;
        if (reader.read("", &next) != ReadStatus::line) break;
        line += "\n" + next;
      }
      if (const size_t end = line.find(kPasteEnd); end != std::string::npos) line.erase(end, kPasteEnd.size());
      *text += line;
      return ReadStatus::line;
    }
    if (line.empty() || line.back() != '\\') {
      *text += line;
      return ReadStatus::line;
    }
    line.pop_back();
    *text += line + "\n";
    p = &kMore;
  }
}

}  // namespace

int run_interactive(ChatSession& session, LineReader& reader, Interrupts& interrupts) {
  std::printf("herd chat: /help lists the commands; Ctrl-C stops a reply; a line ending in \\ continues, and so does\n"
              "a \"\"\" block (\"\"\" on a line of its own ends it) or a paste.\n");
  std::fflush(stdout);
  bool armed = false;  // a Ctrl-C at an empty prompt: a second one quits
  const auto say = [](const std::string& s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  };
  const ChatSession::AskResult ask = [&](const herd::ToolCall& call) -> std::optional<std::string> {
    say("paste the result of " + visible_text(call.name) +
        " (no --tool-exec for it; end a line with \\ to continue, Ctrl-C gives up the reply)\n");
    std::string result;
    if (read_message(reader, "result> ", &result) != ReadStatus::line) return std::nullopt;
    return result;
  };
  for (;;) {
    std::string text;
    const ReadStatus r = read_message(reader, ">>> ", &text);
    if (r == ReadStatus::eof) {
      say("\n");
      return 0;
    }
    if (r == ReadStatus::interrupted) {
      if (!text.empty()) {
        armed = false;
        continue;
      }
      if (armed) return 0;
      armed = true;
      say("(Ctrl-C again to quit)\n");
      continue;
    }
    armed = false;
    if (text.empty()) continue;
    reader.remember(text);
    if (text.front() == '/') {
      if (run_command(session, text, say) == CommandResult::quit) return 0;
      continue;
    }
    const TurnEnd end = session.user_turn(text, ask);
    if (end == TurnEnd::interrupted) say("\n[stopped]");
    say("\n");
    interrupts.flag() = false;
  }
}

int run_piped(ChatSession& session, LineReader& reader) {
  int rc = 0;
  const auto say = [](const std::string& s) { std::cerr << s << std::flush; };
  const ChatSession::AskResult ask = [&](const herd::ToolCall&) -> std::optional<std::string> {
    std::string line;
    if (reader.read("", &line) != ReadStatus::line) return std::nullopt;
    return line;
  };
  std::string line;
  while (reader.read("", &line) == ReadStatus::line) {
    if (line.starts_with(kQuotes)) read_block(reader, line, "", &line);
    if (line.empty()) continue;
    if (line.front() == '/') {
      if (run_command(session, line, say) == CommandResult::quit) break;
      continue;
    }
    if (session.user_turn(line, ask) == TurnEnd::failed) rc = 1;
    // Every user line gets one record, even an empty one, so that scripts stay in step.
    std::fputs("\n\x1e\n", stdout);
    std::fflush(stdout);
  }
  return rc;
}

}  // namespace herd_cli::chat
