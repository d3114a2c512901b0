#include "request-fields.h"

#include <cmath>
#include <sstream>

#include "api-error.h"

namespace herd_serve {
namespace {

std::string range_text(double lo, double hi) {
  std::ostringstream os;
  os << "[" << lo << ", " << hi << "]";
  return os.str();
}

}  // namespace

const nlohmann::json* Fields::get(const char* key) const {
  auto it = obj_.find(key);
  if (it == obj_.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<bool> Fields::boolean(const char* key) const {
  const nlohmann::json* v = get(key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) bad_request(path(key), "must be true or false");
  return v->get<bool>();
}

std::optional<int64_t> Fields::integer(const char* key, int64_t lo, int64_t hi) const {
  const nlohmann::json* v = get(key);
  if (!v) return std::nullopt;
  // 3.0 is an integer too (JavaScript clients send numbers); 3.5 and 1e300 are not.
  int64_t x = 0;
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))
      bad_request(path(key), "must lie in " + range_text(double(lo), double(hi)));
    x = v->get<int64_t>();
  } else if (v->is_number_float() && std::isfinite(v->get<double>()) && std::trunc(v->get<double>()) == v->get<double>() &&
             std::fabs(v->get<double>()) < 9e15) {
    x = int64_t(v->get<double>());
  } else {
    bad_request(path(key), "must be an integer");
  }
  if (x < lo || x > hi) bad_request(path(key), "must lie in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(x));
  return x;
}

std::optional<double> Fields::number(const char* key, double lo, double hi) const {
  const nlohmann::json* v = get(key);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad_request(path(key), "must be a number");
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi)) bad_request(path(key), "must lie in " + range_text(lo, hi));
  return x;
}

std::optional<std::string> Fields::string(const char* key) const {
  const nlohmann::json* v = get(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) bad_request(path(key), "must be a string");
  return v->get<std::string>();
}

const nlohmann::json* Fields::array(const char* key) const {
  const nlohmann::json* v = get(key);
  if (v && !v->is_array()) bad_request(path(key), "must be an array");
  return v;
}

const nlohmann::json* Fields::object(const char* key) const {
  const nlohmann::json* v = get(key);
  if (v && !v->is_object()) bad_request(path(key), "must be an object");
  return v;
}

}  // namespace herd_serve
