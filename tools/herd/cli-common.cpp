#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "commands.h"

namespace herd_cli {

void add_model_flags(CLI::App* cmd, ModelFlags& f) {
  cmd->add_option("-m,--model", f.path, "Model directory (Hugging Face config.json or Meta params.json, with *.safetensors)")
      ->required();
  cmd->add_option("--device", f.options.device, "cpu, cuda, or auto (cuda when a GPU is present)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->add_option("--threads", f.options.n_threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--ctx", f.options.max_context, "KV cache capacity in tokens (clamped to the model's context)")
      ->capture_default_str();
  cmd->add_option("--rope-factor", f.options.meta_rope_factor,
                  "RoPE scaling factor for Meta params.json checkpoints, which do not record it (Llama 3.1: 8, 3.2: 32)")
      ->capture_default_str();
}

int report(const herd::Status& s) {
  if (s.is_ok()) return 0;
  std::cerr << "herd: error: " << s.message() << "\n";
  return s.code() == herd::Status::Code::invalid_input ? 2 : 1;
}

int64_t parse_size(const std::string& text, const std::string& flag) {
  double value = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, value);
  const std::string unit(p, end);
  int64_t scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KiB") scale = int64_t(1) << 10;
  else if (unit == "MiB") scale = int64_t(1) << 20;
  else if (unit == "GiB") scale = int64_t(1) << 30;
  if (ec != std::errc() || scale == 0 || !(value > 0))
    throw CLI::ValidationError(flag, "'" + text + "' is not a size (examples: 512MiB, 8GiB, 1048576)");
  return int64_t(value * double(scale));
}

std::vector<int32_t> parse_ids(const std::string& text, const std::string& flag) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    int32_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size())
      throw CLI::ValidationError(flag, "'" + item + "' is not a token id (expected comma-separated integers)");
    ids.push_back(v);
    start = end + 1;
  }
  return ids;
}

double json_float(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", double(v));
  return std::strtod(buf, nullptr);
}

void print_float(std::string& out, float v) {
  if (!std::isfinite(v)) {  // JSON has no inf/nan
    out += "null";
    return;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", double(v));
  out += buf;
}

}  // namespace herd_cli
