// herd's error type at the API boundary. The library never exits and never throws across it.
#pragma once

#include <string>
#include <utility>

namespace herd {

class Status {
 public:
  enum class Code {
    ok = 0,
    invalid_input,  // a bad file, flag, value or request: the message says which and why
    internal,       // a bug or an environment failure (out of memory, a device error)
  };

  Status() = default;
  static Status ok() { return {}; }
  static Status invalid_input(std::string msg) { return {Code::invalid_input, std::move(msg)}; }
  static Status internal(std::string msg) { return {Code::internal, std::move(msg)}; }

  bool is_ok() const { return code_ == Code::ok; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  // One line naming the file, field or request and the reason.
  const std::string& message() const { return message_; }

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::ok;
  std::string message_;
};

}  // namespace herd
