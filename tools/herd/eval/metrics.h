// The arithmetic of scoring (docs/eval.md), each piece as the published numbers compute it:
// pass@k (HumanEval), majority voting (self-consistency, maj@k), acc and acc_norm
// (lm-evaluation-harness), and the micro and macro averages over items and subjects (MMLU).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herd_cli::eval {

// The unbiased estimator of pass@k from n samples of which c passed (Chen et al. 2021,
// "Evaluating Large Language Models Trained on Code"): 1 - C(n-c, k) / C(n, k), computed as
// a product so that large n cannot overflow. Requires 0 <= c <= n and 1 <= k <= n.
double pass_at_k(int n, int c, int k);

// Self-consistency: the most frequent answer. Ties go to the answer seen first; samples without
// an answer do not vote; nullopt when no sample has one.
std::optional<std::string> majority_vote(const std::vector<std::optional<std::string>>& answers);

// Characters of UTF-8 text (code points), as Python's len() counts a str.
size_t utf8_length(std::string_view text);

// lm-evaluation-harness's multiple-choice predictions: acc takes the argmax of the summed
// logprobs, acc_norm the argmax of each logprob divided by its choice's length in characters.
// Ties go to the first choice, as numpy's argmax does.
struct ChoicePrediction {
  int acc = 0;
  int acc_norm = 0;
};
ChoicePrediction predict_choice(const std::vector<double>& logprobs, const std::vector<std::string>& choices);

// --- averages

// One item's scores: metric name ("acc", "em", "maj@8", "pass@1") -> value in [0, 1].
struct ItemMetrics {
  std::string task, subject;  // subject "" = none
  std::map<std::string, double> values;
};

struct GroupScores {
  int64_t n = 0;                      // items
  std::map<std::string, double> mean;  // each metric over the items that have it
};

struct TaskScores {
  std::string task;
  GroupScores micro;                         // every item of the task counts once
  std::map<std::string, GroupScores> subjects;  // empty when no item has a subject
  // Each metric's mean over the subjects' means (MMLU's macro_avg): every subject counts once
  // whatever its size. Items without a subject form the subject "". Empty without subjects.
  std::map<std::string, double> macro;
};

// Tasks in order of first appearance.
std::vector<TaskScores> summarize(const std::vector<ItemMetrics>& items);

}  // namespace herd_cli::eval
