// Errors inside the library: HERD_CHECK throws herd::Error with an actionable message.
// The API boundary (src/engine/guarded.h) catches and returns a Status; nothing here exits.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace herd {

// What kind of failure: bad input, a missing file or id, a full budget (all user-fixable, exit 2),
// or an internal bug (exit 1). The API boundary maps each to its Status code.
enum class ErrorKind { invalid_input, not_found, resource_exhausted, internal };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string msg) : std::runtime_error(std::move(msg)), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

template <typename... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail_input(Args&&... args) {
  throw Error(ErrorKind::invalid_input, str_cat(std::forward<Args>(args)...));
}

}  // namespace herd

// A violated internal invariant: a bug in herd, reported with where it happened.
#define HERD_CHECK(cond, ...)                                                               \
  do {                                                                                      \
    if (!(cond))                                                                            \
      throw ::herd::Error(::herd::ErrorKind::internal,                                      \
                          ::herd::str_cat(__FILE__, ":", __LINE__, ": check failed: " #cond \
                                          " " __VA_OPT__(, ) __VA_ARGS__));                 \
  } while (0)

// Bad input from a file or the user: a one-line message that names what and why.
#define HERD_REQUIRE(cond, ...)                    \
  do {                                             \
    if (!(cond)) ::herd::fail_input(__VA_ARGS__);  \
  } while (0)
