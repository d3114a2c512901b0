// Typed access to the fields of a request body: each getter checks the JSON type and range and
// throws a 400 naming the field's path; an absent or null field gives nullopt.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace herd_serve {

class Fields {
 public:
  // obj must be a JSON object (checked by the caller); path prefixes every field's name.
  Fields(const nlohmann::json& obj, std::string path = "") : obj_(obj), path_(std::move(path)) {}

  const nlohmann::json* get(const char* key) const;  // null when absent or JSON null
  std::string path(const char* key) const { return path_.empty() ? key : path_ + "." + key; }

  std::optional<bool> boolean(const char* key) const;
  std::optional<int64_t> integer(const char* key, int64_t lo, int64_t hi) const;
  std::optional<double> number(const char* key, double lo, double hi) const;
  std::optional<std::string> string(const char* key) const;
  const nlohmann::json* array(const char* key) const;
  const nlohmann::json* object(const char* key) const;

 private:
  const nlohmann::json& obj_;
  std::string path_;
};

}  // namespace herd_serve
