// The regular expressions of `"extract": "regex"` (docs/eval.md): PCRE2, run by its interpreter
// under limits, so that a pattern that backtracks exponentially ("(.*)*x$") fails one item's
// extraction quickly instead of hanging the run.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace herd_cli::eval {

class Regex {
 public:
  // nullptr with *error set to PCRE2's message and the offset when the pattern does not compile.
  static std::shared_ptr<const Regex> compile(const std::string& pattern, std::string* error);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  enum class Result { match, no_match, too_complex };
  // The first match: *found is its first capture group when the pattern has one and it took
  // part, else the whole match. too_complex: the search hit a backtracking, depth or memory
  // limit (about 10^7 steps over the whole text, whatever its length).
  Result search(std::string_view text, std::string* found) const;

 private:
  struct Impl;
  explicit Regex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace herd_cli::eval
