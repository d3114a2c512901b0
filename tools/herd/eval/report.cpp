#include "report.h"

#include <cstdio>
#include <set>

namespace herd_cli::eval {
namespace {

using nlohmann::ordered_json;

std::string cell(const std::map<std::string, double>& values, const std::string& metric) {
  const auto it = values.find(metric);
  if (it == values.end()) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", it->second);
  return buf;
}

std::string row(const std::string& task, const std::string& subject, const std::string& n,
                const std::map<std::string, double>& values, const std::set<std::string>& metrics) {
  std::string r = "| ";
  for (const std::string* part : {&task, &subject, &n}) r.append(*part).append(" | ");
  for (const std::string& m : metrics) r.append(cell(values, m)).append(" | ");
  r.back() = '\n';  // the last cell's trailing space
  return r;
}

ordered_json group_json(const GroupScores& g) { return {{"n", g.n}, {"metrics", g.mean}}; }

}  // namespace

std::string format_tables(const std::vector<TaskScores>& tasks) {
  std::string out;
  for (const TaskScores& t : tasks) {
    std::set<std::string> metrics;
    for (const auto& [name, v] : t.micro.mean) metrics.insert(name);
    if (!out.empty()) out += "\n";
    out += "| task | subject | n |";
    for (const std::string& m : metrics) out += " " + m + " |";
    out += "\n|---|---|---|";
    for (size_t i = 0; i < metrics.size(); ++i) out += "---|";
    out += "\n";
    if (t.subjects.empty()) {
      out += row(t.task, "all", std::to_string(t.micro.n), t.micro.mean, metrics);
      continue;
    }
    for (const auto& [subject, g] : t.subjects)
      out += row(t.task, subject.empty() ? "(none)" : subject, std::to_string(g.n), g.mean, metrics);
    out += row(t.task, "macro avg", std::to_string(t.subjects.size()) + " subjects", t.macro, metrics);
    out += row(t.task, "micro avg", std::to_string(t.micro.n), t.micro.mean, metrics);
  }
  return out;
}

ordered_json tasks_json(const std::vector<TaskScores>& tasks) {
  ordered_json out = ordered_json::object();
  for (const TaskScores& t : tasks) {
    ordered_json j = group_json(t.micro);
    if (!t.subjects.empty()) {
      j["macro"] = t.macro;
      ordered_json subjects = ordered_json::object();
      for (const auto& [subject, g] : t.subjects) subjects[subject] = group_json(g);
      j["subjects"] = std::move(subjects);
    }
    out[t.task] = std::move(j);
  }
  return out;
}

}  // namespace herd_cli::eval
