// The public file checks (include/herd/files.h) over common/read-file.h and common/json-limits.h.
#include "common/json-limits.h"
#include "common/read-file.h"
#include "engine/guarded.h"
#include "herd/files.h"

namespace herd {

Status read_file(const std::string& path, FileKind kind, std::string* out) {
  return guarded([&] {
    *out = kind == FileKind::json ? read_file(path, kMaxJsonFileBytes, "a JSON file")
                                  : read_file(path, kMaxTextFileBytes, "a text file");
  });
}

Status check_json_nesting(std::string_view json, const std::string& what) {
  return guarded([&] { parse_json_limited(json, what); });
}

}  // namespace herd
