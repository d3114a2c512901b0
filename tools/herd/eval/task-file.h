// `herd eval` task files (docs/eval.md): JSONL, one item per line, of two kinds: multiple-choice
// items scored by loglikelihood, and generation items scored by answer extraction or by a test
// command. Parsing validates everything up front, so that a bad line fails before the model runs.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "herd/herd.h"
#include "extract-regex.h"

namespace herd_cli::eval {

// How the answer is taken out of a generated text (extract.h).
enum class ExtractRule { exact, last_number, boxed, choice_letter, regex };

struct Extraction {
  ExtractRule rule = ExtractRule::exact;
  std::shared_ptr<const Regex> pattern;  // ExtractRule::regex, compiled at parse time
};

// Loglikelihood scoring of each choice as a continuation of the context (lm-evaluation-harness's
// multiple_choice): the request for choice i is context + delimiter + choices[i].
struct MultipleChoice {
  std::string context;
  std::vector<std::string> choices;
  int answer = 0;               // index into choices
  std::string delimiter = " ";  // lm-evaluation-harness's target_delimiter
};

// A test command decides whether one sample passes: it gets prefix + answer + suffix on stdin and
// passes when it exits with status 0 within its limits.
struct TestCommand {
  std::string command;  // run by /bin/sh -c in a fresh temporary directory
  std::string prefix, suffix;
  std::optional<double> timeout_s;  // unset: --exec-timeout
};

// Sampling settings an item may set; unset ones take the command line's.
struct ItemSampling {
  std::optional<float> temperature, top_p, min_p;
  std::optional<int32_t> top_k;
  std::vector<std::string> stop;  // added to the command line's --stop strings
};

struct Generation {
  // Either raw text (no template; BOS as the engine adds it) or a chat, rendered with the model's
  // prompt format: the system message, then few-shot user/assistant turns, then the messages.
  std::optional<std::string> prompt;
  std::vector<herd::Message> messages;
  int n = 1;                       // samples of the prompt
  std::optional<int> max_tokens;   // unset: --max-tokens
  ItemSampling sampling;
  std::optional<std::string> answer;  // the reference; absent with a test command
  Extraction extract;
  bool has_extract = false;  // an explicit rule (with a test: what is tested; else the whole output)
  std::optional<TestCommand> test;
  std::vector<int> pass_at;  // with a test: the k of each pass@k reported
};

struct TaskItem {
  std::string origin;  // "FILE:LINE", for messages
  std::string id;
  std::string task;     // default: the task file's name without its extension
  std::string subject;  // "" = none
  std::string meta;     // the item's free-form "meta" as JSON text ("" when absent), copied to the results
  std::variant<MultipleChoice, Generation> kind;
};

// Parses a whole task file; on any problem it returns invalid_input naming FILE:LINE, the field
// and the reason, and *items is unspecified.
herd::Status parse_task_file(const std::string& path, std::vector<TaskItem>* items);
// One line's item, for the parser and its tests. `origin` prefixes messages; `task` is the
// default task name.
herd::Status parse_task_line(const std::string& line, const std::string& origin, const std::string& task,
                             TaskItem* item);

}  // namespace herd_cli::eval
