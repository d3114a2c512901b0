// herd's error type at the API boundary. The library never exits and never throws across it.
#pragma once

#include <string>
#include <utility>

#include "herd/export.h"

namespace herd {

class Status {
 public:
  // What went wrong, in the classes a caller acts on differently (a server maps them to HTTP
  // statuses: 400, 404, 429, 499, 500).
  enum class Code {
    ok = 0,
    invalid_input,       // a bad file, value or request: the message says which and why
    not_found,           // a file or a request id that does not exist
    resource_exhausted,  // no room now or ever in a budget (the KV cache, the request queue)
    cancelled,           // the caller cancelled the work
    internal,            // a bug or an environment failure (out of memory, a device error)
  };

  Status() = default;
  static Status ok() { return {}; }
  static Status invalid_input(std::string msg) { return {Code::invalid_input, std::move(msg)}; }
  static Status not_found(std::string msg) { return {Code::not_found, std::move(msg)}; }
  static Status resource_exhausted(std::string msg) { return {Code::resource_exhausted, std::move(msg)}; }
  static Status cancelled(std::string msg) { return {Code::cancelled, std::move(msg)}; }
  static Status internal(std::string msg) { return {Code::internal, std::move(msg)}; }

  bool is_ok() const { return code_ == Code::ok; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  // Whether the caller can fix it (its input, its budget, its own cancel) rather than a fault in herd.
  bool is_caller_error() const { return code_ != Code::ok && code_ != Code::internal; }
  // One line naming the file, field or request and the reason.
  const std::string& message() const { return message_; }
  // The same status with `prefix` before its message ("tasks.jsonl:3: " + message).
  Status with_prefix(const std::string& prefix) const { return {code_, prefix + message_}; }

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::ok;
  std::string message_;
};

// "ok", "invalid_input", "not_found", "resource_exhausted", "cancelled", "internal".
HERD_API const char* status_code_name(Status::Code code);

}  // namespace herd
