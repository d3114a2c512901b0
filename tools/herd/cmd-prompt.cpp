// `herd prompt` and `herd toolcall` (docs/cli.md): a conversation -> the exact Llama 3.1 prompt (text
// or ids), and a raw completion -> content, tool calls and how it ended, as JSON.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "herd/chat.h"
#include "herd/tokenizer.h"

namespace herd_cli {
namespace {

struct PromptFlags {
  std::string model;
  std::string conversation;
  bool ids = false;
  bool special_in_content = false;
};

void write_stdout(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }

int run_prompt(const PromptFlags& f) {
  std::string json;
  if (int rc = report(herd::read_file(f.conversation, herd::FileKind::json, &json))) return rc;
  if (int rc = report(herd::check_json_nesting(json, f.conversation))) return rc;
  herd::Conversation conversation;
  if (herd::Status s = herd::parse_conversation(json, &conversation); !s)
    return report(herd::Status::invalid_input(f.conversation + ": " + s.message()));
  if (!f.ids) {
    std::string text;
    if (herd::Status s = herd::render_prompt(conversation, &text); !s)
      return report(herd::Status::invalid_input(f.conversation + ": " + s.message()));
    write_stdout(text);
    return 0;
  }
  std::unique_ptr<herd::Tokenizer> tok;
  if (int rc = report(herd::Tokenizer::load(f.model, &tok))) return rc;
  std::vector<int32_t> ids;
  if (herd::Status s = herd::render_prompt_ids(conversation, *tok, f.special_in_content, &ids); !s)
    return report(s.is_caller_error() ? s.with_prefix(f.conversation + ": ") : s);
  write_stdout(nlohmann::json(ids).dump() + "\n");
  return 0;
}

int run_toolcall(const std::string& builtin_list, bool builtin_given) {
  herd::ToolParseOptions options;
  if (builtin_given) {
    options.builtin_tools.clear();
    std::istringstream names(builtin_list);
    for (std::string name; std::getline(names, name, ',');) {
      name.erase(0, name.find_first_not_of(' '));
      name.erase(name.find_last_not_of(' ') + 1);
      if (!name.empty()) options.builtin_tools.push_back(name);
    }
  }
  std::ios::sync_with_stdio(false);
  const std::string completion((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  const herd::ParsedCompletion parsed = herd::parse_tool_calls(completion, options);
  nlohmann::ordered_json out;
  out["content"] = parsed.content;
  out["tool_calls"] = nlohmann::ordered_json::array();
  for (const herd::ToolCall& call : parsed.tool_calls)
    out["tool_calls"].push_back({{"name", call.name},
                                 {"arguments", nlohmann::ordered_json::parse(call.arguments)},
                                 {"raw", call.raw}});
  out["end"] = herd::completion_end_name(parsed.end);
  out["diagnostics"] = parsed.diagnostics;
  // A completion cut inside a UTF-8 character is still printed, with U+FFFD for the broken bytes.
  write_stdout(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  return 0;
}

}  // namespace

void add_prompt_commands(CLI::App& app, int& rc) {
  auto flags = std::make_shared<PromptFlags>();
  CLI::App* prompt = app.add_subcommand(
      "prompt", "Render a conversation as the exact Llama 3.1 prompt (the official Hugging Face chat template)");
  prompt->add_option("-m,--model", flags->model,
                     "Tokenizer file, model directory or GGUF file (read only with --ids, whose prompt follows its chat format)")->required();
  prompt->add_option("--conversation", flags->conversation,
                     "JSON file: {\"messages\": [...], \"tools\"?, \"custom_tools\"?, \"builtin_tools\"?, "
                     "\"date_string\"?, \"tools_in_user_message\"?, \"add_generation_prompt\"?} or "
                     "{\"messages\", \"variables\"}")
      ->required();
  prompt->add_flag("--ids", flags->ids, "Print a JSON array of token ids instead of the text");
  prompt->add_flag("--special-in-content", flags->special_in_content,
                   "With --ids: let special-token text inside message content become special ids, as Hugging Face "
                   "does (by default it stays plain text, so content can never forge a turn)");
  prompt->callback([flags, &rc] { rc = run_prompt(*flags); });

  auto builtin = std::make_shared<std::string>();
  CLI::App* toolcall = app.add_subcommand(
      "toolcall", "Read one raw completion on stdin; print its content, tool calls and end (eom|eot|length) as JSON");
  CLI::Option* opt = toolcall->add_option(
      "--builtin-tools", *builtin,
      "Comma-separated names whose NAME.call(...) after <|python_tag|> is a built-in call "
      "(default: brave_search,wolfram_alpha,photogen); other text after the tag is code_interpreter code");
  toolcall->callback([builtin, opt, &rc] { rc = run_toolcall(*builtin, opt->count() > 0); });
}

}  // namespace herd_cli
