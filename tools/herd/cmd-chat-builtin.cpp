// What `herd chat` answers itself: user turns grounded in local documents, brave_search from
// the same index, wolfram_alpha's "not configured", and code_interpreter's code in a sandbox
// (docs/rag.md, docs/tools.md).
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "cmd-chat.h"

namespace herd_cli::chat {

std::string brave_search_result(const herd::Retriever& docs, const herd::ToolCall& call, int k) {
  using nlohmann::ordered_json;
  const ordered_json args = ordered_json::parse(call.arguments, nullptr, /*allow_exceptions=*/false);
  const std::string query = args.is_object() && args.contains("query") && args["query"].is_string()
                                ? args["query"].get<std::string>()
                                : "";
  ordered_json out = {{"query", query}, {"top_k", ordered_json::array()}};
  std::vector<herd::Passage> hits;
  if (herd::Status s = docs.search(query, k, &hits); !s) return ordered_json({{"error", s.message()}}).dump();
  for (const herd::Passage& p : hits) {
    std::string url = "file://" + p.path + "#L" + std::to_string(p.line_begin);
    if (p.line_end != p.line_begin) url += "-L" + std::to_string(p.line_end);
    out["top_k"].push_back(
        {{"type", "web"}, {"title", herd::passage_location(p)}, {"url", url}, {"description", p.text}});
  }
  return out.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

std::string wolfram_alpha_unconfigured() {
  return nlohmann::json({{"error", "wolfram_alpha is not configured here; answer without it"}}).dump();
}

ToolLimits code_limits(const ToolLimits& tool_limits, bool isolate_network) {
  ToolLimits l;
  l.timeout_s = tool_limits.timeout_s;
  l.output_cap = tool_limits.output_cap;
  l.cpu_seconds = int64_t(std::ceil(std::min(tool_limits.timeout_s, 1e6))) + 1;  // the wall limit ends it first
  l.memory_bytes = int64_t(1) << 30;
  l.file_bytes = int64_t(16) << 20;
  l.core_bytes = 0;
  l.processes = 32;
  l.merge_stderr = true;  // a traceback is part of the result, as in a notebook
  l.sandbox = Sandbox{};
  l.sandbox->no_network = isolate_network;
  return l;
}

std::string run_code(const std::string& code, const ToolLimits& limits, const std::atomic<bool>& stop) {
  // -I: no user site-packages, no PYTHON* variables, no script directory on sys.path; the code
  // arrives on stdin, so nothing is written before it runs.
  const ToolOutcome r = run_tool_command("exec python3 -I -", code, limits, stop);
  std::string out = r.output.substr(0, size_t(std::max<int64_t>(limits.output_cap, 0)));
  if (!r.ok) {
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += "[error: " + r.error + "]";
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace herd_cli::chat
