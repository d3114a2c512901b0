#include "metrics.h"

#include <algorithm>

namespace herd_cli::eval {
namespace {

// The argmax of score(i); the first wins a tie.
template <typename Score>
int argmax(size_t n, const Score& score) {
  int best = 0;
  for (size_t i = 1; i < n; ++i)
    if (score(i) > score(size_t(best))) best = int(i);
  return best;
}

GroupScores mean_of(const std::vector<const ItemMetrics*>& items) {
  GroupScores g;
  g.n = int64_t(items.size());
  std::map<std::string, int64_t> count;
  for (const ItemMetrics* m : items)
    for (const auto& [name, value] : m->values) {
      g.mean[name] += value;
      ++count[name];
    }
  for (auto& [name, sum] : g.mean) sum /= double(count[name]);
  return g;
}

}  // namespace

double pass_at_k(int n, int c, int k) {
  if (n - c < k) return 1.0;  // every k-subset holds a passing sample
  double all_fail = 1.0;       // C(n-c, k) / C(n, k) = prod over i in (n-c, n] of (1 - k/i)
  for (int i = n - c + 1; i <= n; ++i) all_fail *= 1.0 - double(k) / double(i);
  return 1.0 - all_fail;
}

std::optional<std::string> majority_vote(const std::vector<std::optional<std::string>>& answers) {
  std::vector<std::pair<std::string, int>> counts;  // in order of first appearance
  for (const auto& a : answers) {
    if (!a) continue;
    auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == *a; });
    if (it == counts.end()) counts.emplace_back(*a, 1);
    else ++it->second;
  }
  if (counts.empty()) return std::nullopt;
  return counts[size_t(argmax(counts.size(), [&](size_t i) { return counts[i].second; }))].first;
}

size_t utf8_length(std::string_view text) {
  // Every byte but continuation bytes (10xxxxxx) starts a code point.
  return size_t(std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

ChoicePrediction predict_choice(const std::vector<double>& logprobs, const std::vector<std::string>& choices) {
  ChoicePrediction p;
  p.acc = argmax(logprobs.size(), [&](size_t i) { return logprobs[i]; });
  p.acc_norm = argmax(logprobs.size(), [&](size_t i) { return logprobs[i] / double(utf8_length(choices[i])); });
  return p;
}

std::vector<TaskScores> summarize(const std::vector<ItemMetrics>& items) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<const ItemMetrics*>> by_task;
  for (const ItemMetrics& m : items) {
    if (!by_task.count(m.task)) order.push_back(m.task);
    by_task[m.task].push_back(&m);
  }
  std::vector<TaskScores> out;
  for (const std::string& task : order) {
    const auto& members = by_task[task];
    TaskScores t;
    t.task = task;
    t.micro = mean_of(members);
    const bool has_subjects = std::any_of(members.begin(), members.end(), [](const ItemMetrics* m) { return !m->subject.empty(); });
    if (has_subjects) {
      std::map<std::string, std::vector<const ItemMetrics*>> by_subject;
      for (const ItemMetrics* m : members) by_subject[m->subject].push_back(m);
      for (const auto& [subject, group] : by_subject) t.subjects[subject] = mean_of(group);
      std::vector<ItemMetrics> subject_means;  // one pseudo-item per subject: the macro average is their mean
      for (const auto& [subject, g] : t.subjects) subject_means.push_back({task, subject, g.mean});
      std::vector<const ItemMetrics*> ptrs;
      for (const ItemMetrics& m : subject_means) ptrs.push_back(&m);
      t.macro = mean_of(ptrs).mean;
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace herd_cli::eval
