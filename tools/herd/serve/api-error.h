// Errors of the HTTP API in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
// Handlers throw ApiError; the server turns it into the status and body, so every malformed
// request gets the same kind of answer.
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "herd/status.h"

namespace herd_serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string type = "invalid_request_error", std::string param = "",
           std::string code = "")
      : std::runtime_error(message), status_(status), type_(std::move(type)), param_(std::move(param)),
        code_(std::move(code)) {}
  int status() const { return status_; }
  nlohmann::json body() const;

 private:
  int status_;
  std::string type_, param_, code_;
};

// A 400 naming the field: `param` is its path ("messages[2].role").
[[noreturn]] void bad_request(const std::string& param, const std::string& message);

// The HTTP status and error type of a library Status that is not ok: invalid input 400,
// not found 404, resource exhausted 429, cancelled 499, internal 500.
ApiError from_status(const herd::Status& s);

// Every JSON body the server writes: invalid UTF-8 (a model can emit it) is replaced, never thrown on.
std::string dump(const nlohmann::json& j);

}  // namespace herd_serve
