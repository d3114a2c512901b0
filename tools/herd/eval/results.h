// --out: one JSON line per finished item, appended and flushed as each one finishes, so that an
// interrupted run loses at most the line being written and a rerun skips what is done.
#pragma once

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "herd/herd.h"
#include "metrics.h"

namespace herd_cli::eval {

using ItemKey = std::pair<std::string, std::string>;  // (task, id): what identifies an item

class ResultsFile {
 public:
  // Reads the items already done (a missing file is an empty one) and opens the file for
  // appending. A last line cut off by an interrupted write is dropped from the file; any other
  // line that is not a result is invalid input naming FILE:LINE.
  static herd::Status open(const std::string& path, ResultsFile* out);
  ResultsFile() = default;
  ~ResultsFile();
  ResultsFile(ResultsFile&& other) noexcept;
  ResultsFile& operator=(ResultsFile&& other) noexcept;

  const std::map<ItemKey, ItemMetrics>& done() const { return done_; }
  herd::Status append(const nlohmann::ordered_json& record);

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  std::map<ItemKey, ItemMetrics> done_;
};

}  // namespace herd_cli::eval
