#include "results.h"

#include <filesystem>

namespace herd_cli::eval {
namespace {

using nlohmann::json;

// The part of a result line that the summary needs.
bool read_metrics(const json& line, ItemMetrics* m, ItemKey* key) {
  if (!line.is_object() || !line.contains("id") || !line.contains("task") || !line.contains("metrics") ||
      !line["id"].is_string() || !line["task"].is_string() || !line["metrics"].is_object())
    return false;
  m->task = line["task"].get<std::string>();
  if (line.contains("subject") && line["subject"].is_string()) m->subject = line["subject"].get<std::string>();
  for (const auto& [name, value] : line["metrics"].items()) {
    if (!value.is_number()) return false;
    m->values[name] = value.get<double>();
  }
  *key = {m->task, line["id"].get<std::string>()};
  return true;
}

}  // namespace

herd::Status ResultsFile::open(const std::string& path, ResultsFile* out) {
  ResultsFile f;
  f.path_ = path;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::string text;
    if (herd::Status s = herd::read_file(path, herd::FileKind::text, &text); !s) return s;
    size_t start = 0;
    for (int n = 1; start < text.size(); ++n) {
      const size_t end = text.find('\n', start);
      if (end == std::string::npos) {
        // Written up to a crash or Ctrl-C: drop it, so that the item runs again.
        std::filesystem::resize_file(path, start, ec);
        if (ec) return herd::Status::invalid_input(path + ": cannot drop its cut-off last line (" + ec.message() + ")");
        break;
      }
      const std::string line = text.substr(start, end - start);
      start = end + 1;
      if (line.empty()) continue;
      ItemMetrics m;
      ItemKey key;
      const std::string origin = path + ":" + std::to_string(n);
      if (herd::Status s = herd::check_json_nesting(line, origin); !s) return s;
      const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!read_metrics(j, &m, &key))
        return herd::Status::invalid_input(origin + ": not a herd eval result (a JSON object with id, task and metrics)");
      f.done_[key] = std::move(m);
    }
  }
  f.file_ = std::fopen(path.c_str(), "ab");
  if (!f.file_) return herd::Status::invalid_input(path + ": cannot open for writing");
  *out = std::move(f);
  return herd::Status::ok();
}

ResultsFile::~ResultsFile() {
  if (file_) std::fclose(file_);
}

ResultsFile::ResultsFile(ResultsFile&& other) noexcept { *this = std::move(other); }

ResultsFile& ResultsFile::operator=(ResultsFile&& other) noexcept {
  if (this != &other) {
    if (file_) std::fclose(file_);
    path_ = std::move(other.path_);
    done_ = std::move(other.done_);
    file_ = std::exchange(other.file_, nullptr);
  }
  return *this;
}

herd::Status ResultsFile::append(const nlohmann::ordered_json& record) {
  const std::string line = record.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    return herd::Status::internal(path_ + ": cannot write a result (disk full?)");
  return herd::Status::ok();
}

}  // namespace herd_cli::eval
