// One finished item -> its line of --out (docs/eval.md, "Results") and its metrics: the
// multiple-choice scores from the choices' loglikelihoods, the generation scores from the
// samples' texts (answer extraction, exact match, maj@n, or test commands and pass@k).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "exec.h"
#include "metrics.h"
#include "task-file.h"

namespace herd_cli::eval {

struct ItemResult {
  nlohmann::ordered_json record;  // the line of --out
  ItemMetrics metrics;
};

// What the engine made of one choice.
struct ChoiceScore {
  double logprob = 0;  // the sum over the choice's tokens given the context
  int n_tokens = 0;
};

// metrics: acc, acc_norm. `prompt` is the text shown in the record.
ItemResult score_multiple_choice(const TaskItem& item, const MultipleChoice& mc, const std::vector<ChoiceScore>& scores);

// Runs one sample's answer through the item's test command (run_test_command, or a stand-in in tests).
using TestRunner = std::function<TestOutcome(const TestCommand& test, const std::string& answer)>;

// With a test: pass@k for each k of pass_at, from how many samples passed; "correct" is sample
// 0's outcome. Otherwise: em (sample 0's answer equals the reference), and with n > 1 maj@n (the
// majority answer does); "correct" is the majority's.
ItemResult score_generation(const TaskItem& item, const Generation& gen, const std::string& prompt,
                            const std::vector<std::string>& outputs, const TestRunner& run_test);

}  // namespace herd_cli::eval
