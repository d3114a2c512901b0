// Reading the files a user names with the checks herd applies to its own: a regular file only
// (never a FIFO, a device or a directory), no larger than its kind allows, and JSON no deeper
// than herd reads anywhere.
#pragma once

#include <string>
#include <string_view>

#include "herd/export.h"
#include "herd/status.h"

namespace herd {

enum class FileKind {
  json,  // a conversation, a list of tools: at most 64 MiB
  text,  // a text or JSONL data set: at most 1 GiB
};

// The whole content of path into *out. On failure the Status (invalid_input) names the file and
// the reason: missing, unreadable, a symlink loop, not a regular file, or over its kind's size.
HERD_API Status read_file(const std::string& path, FileKind kind, std::string* out);

// invalid_input naming `what` when the JSON text nests deeper than 128 levels, ok otherwise
// (malformed JSON included: the caller's own parser words that error). Code that walks parsed
// JSON recursively (printing it) needs this bound.
HERD_API Status check_json_nesting(std::string_view json, const std::string& what);

}  // namespace herd
