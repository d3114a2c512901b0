#include "chat/py-json.h"

#include "common/check.h"
#include "common/json-limits.h"

namespace herd::chat {
namespace {

std::string scalar_json(const Json& v) {
  // nlohmann writes strings with the same escapes as json.dumps(ensure_ascii=False), and floats
  // as the shortest round-trip form with ".0" kept, as Python's repr does.
  return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool dump(const Json& v, int indent, int depth, size_t max_bytes, std::string& out) {
  HERD_REQUIRE(depth <= kMaxJsonDepth, "JSON value: nested deeper than ", kMaxJsonDepth, " levels");
  const bool pretty = indent >= 0;
  auto newline = [&](int level) {
    out += '\n';
    out.append(size_t(indent) * size_t(level), ' ');
  };
  if (v.is_object() || v.is_array()) {
    const bool obj = v.is_object();
    if (v.empty()) {
      out += obj ? "{}" : "[]";
      return out.size() <= max_bytes;
    }
    out += obj ? '{' : '[';
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!first) out += pretty ? "," : ", ";
      first = false;
      if (pretty) newline(depth + 1);
      if (obj) {
        out += scalar_json(Json(it.key()));
        out += ": ";
      }
      if (!dump(*it, indent, depth + 1, max_bytes, out)) return false;
    }
    if (pretty) newline(depth);
    out += obj ? '}' : ']';
  } else {
    out += scalar_json(v);
  }
  return out.size() <= max_bytes;
}

}  // namespace

std::string py_json_dumps(const Json& value, int indent) {
  std::string out;
  dump(value, indent, 0, std::string::npos, out);
  return out;
}

bool py_json_dumps_to(const Json& value, int indent, size_t max_bytes, std::string& out) {
  return dump(value, indent, 0, max_bytes, out);
}

std::string py_str(const Json& scalar) {
  if (scalar.is_boolean()) return scalar.get<bool>() ? "True" : "False";
  if (scalar.is_null()) return "None";
  if (scalar.is_string()) return scalar.get<std::string>();
  return scalar_json(scalar);
}

}  // namespace herd::chat
