#include "chat/py-json.h"

namespace herd::chat {
namespace {

std::string scalar_json(const Json& v) {
  // nlohmann writes strings with the same escapes as json.dumps(ensure_ascii=False), and floats
  // as the shortest round-trip form with ".0" kept, as Python's repr does.
  return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void dump(const Json& v, int indent, int depth, std::string& out) {
  const bool pretty = indent >= 0;
  auto newline = [&](int level) {
    out += '\n';
    out.append(size_t(indent) * size_t(level), ' ');
  };
  if (v.is_object() || v.is_array()) {
    const bool obj = v.is_object();
    if (v.empty()) {
      out += obj ? "{}" : "[]";
      return;
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
      dump(*it, indent, depth + 1, out);
    }
    if (pretty) newline(depth);
    out += obj ? '}' : ']';
    return;
  }
  out += scalar_json(v);
}

}  // namespace

std::string py_json_dumps(const Json& value, int indent) {
  std::string out;
  dump(value, indent, 0, out);
  return out;
}

std::string py_str(const Json& scalar) {
  if (scalar.is_boolean()) return scalar.get<bool>() ? "True" : "False";
  if (scalar.is_null()) return "None";
  if (scalar.is_string()) return scalar.get<std::string>();
  return scalar_json(scalar);
}

}  // namespace herd::chat
