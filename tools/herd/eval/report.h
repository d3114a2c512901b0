// What `herd eval` reports: a table per task on stdout (Markdown, so that it pastes into notes)
// and the same numbers as JSON for --summary.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "metrics.h"

namespace herd_cli::eval {

// One table per task: a row per subject, then "macro avg" and "micro avg" rows when the task has
// subjects, else one row "all"; a column per metric, values with 4 decimals.
std::string format_tables(const std::vector<TaskScores>& tasks);

// {"TASK": {"n": N, "metrics": {...micro...}, "macro": {...}?, "subjects": {"S": {"n", "metrics"}}?}}
nlohmann::ordered_json tasks_json(const std::vector<TaskScores>& tasks);

}  // namespace herd_cli::eval
