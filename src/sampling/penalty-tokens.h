// The tokens a request's penalties touch, as a device sampler takes them: each distinct id of the
// prompt and the output once, with its count in the output alone (frequency and presence count only
// generated tokens; repetition counts every distinct token once).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace herd {

// Each distinct penalised id once, with its count in the output.
struct PenaltyList {
  std::span<const int32_t> ids, counts;  // [n_distinct] each
};

class PenaltyTokens {
 public:
  PenaltyTokens() = default;
  // Sorts the prompt's distinct ids once: a long prompt costs O(n log n) once, O(n) a step after.
  explicit PenaltyTokens(std::span<const int32_t> prompt) { reset(prompt); }
  void reset(std::span<const int32_t> prompt);  // [n_prompt]
  // ids and counts for this step's output so far.
  void update(std::span<const int32_t> generated);  // [n_generated]

  std::span<const int32_t> ids() const { return ids_; }        // [n_distinct] ascending
  std::span<const int32_t> counts() const { return counts_; }  // [n_distinct] occurrences in generated
  PenaltyList list() const { return {ids_, counts_}; }

 private:
  std::vector<int32_t> prompt_ids_;  // distinct, ascending
  std::vector<int32_t> sorted_;      // the output sorted (scratch)
  std::vector<int32_t> ids_, counts_;
};

}  // namespace herd
