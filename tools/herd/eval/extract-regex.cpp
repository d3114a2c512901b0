#define PCRE2_CODE_UNIT_WIDTH 8
#include "extract-regex.h"

#include <pcre2.h>

#include <algorithm>
#include <cstdint>

namespace herd_cli::eval {
namespace {

// PCRE2's match limit counts backtracking steps per start position, so the whole search's budget
// is shared out over the positions it may try; a few thousand steps are plenty for a pattern
// that does not backtrack wildly at every position.
constexpr uint64_t kSearchSteps = 10'000'000;
constexpr uint32_t kMinStepsPerStart = 1000;
constexpr uint32_t kDepthLimit = 10'000;      // nested backtracking points
constexpr uint32_t kHeapLimitKiB = 64 << 10;  // their frames' memory

}  // namespace

struct Regex::Impl {
  pcre2_code* code = nullptr;
  ~Impl() { pcre2_code_free(code); }
};

Regex::Regex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Regex::~Regex() = default;

std::shared_ptr<const Regex> Regex::compile(const std::string& pattern, std::string* error) {
  auto impl = std::make_unique<Impl>();
  int err = 0;
  PCRE2_SIZE offset = 0;
  // MATCH_INVALID_UTF: a text with broken UTF-8 is searched, not rejected. No JIT: the
  // interpreter honours every limit.
  impl->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                             PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &err, &offset, nullptr);
  if (!impl->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    *error = std::string(reinterpret_cast<const char*>(msg)) + " at offset " + std::to_string(offset);
    return nullptr;
  }
  return std::shared_ptr<const Regex>(new Regex(std::move(impl)));
}

Regex::Result Regex::search(std::string_view text, std::string* found) const {
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  if (!context || !match) {
    pcre2_match_context_free(context);
    pcre2_match_data_free(match);
    return Result::too_complex;
  }
  pcre2_set_match_limit(context, uint32_t(std::max<uint64_t>(kMinStepsPerStart, kSearchSteps / (text.size() + 1))));
  pcre2_set_depth_limit(context, kDepthLimit);
  pcre2_set_heap_limit(context, kHeapLimitKiB);
  const int rc =
      pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0, match, context);
  Result result = Result::no_match;
  if (rc > 0) {
    const PCRE2_SIZE* v = pcre2_get_ovector_pointer(match);
    const int group = rc > 1 && v[2] != PCRE2_UNSET ? 1 : 0;
    *found = std::string(text.substr(v[2 * group], v[2 * group + 1] - v[2 * group]));
    result = Result::match;
  } else if (rc != PCRE2_ERROR_NOMATCH) {
    result = Result::too_complex;  // a limit (or a text PCRE2 cannot search)
  }
  pcre2_match_data_free(match);
  pcre2_match_context_free(context);
  return result;
}

}  // namespace herd_cli::eval
