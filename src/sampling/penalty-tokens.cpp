#include "sampling/penalty-tokens.h"

#include <algorithm>

namespace herd {

void PenaltyTokens::reset(std::span<const int32_t> prompt) {
  prompt_ids_.assign(prompt.begin(), prompt.end());
  std::sort(prompt_ids_.begin(), prompt_ids_.end());
  prompt_ids_.erase(std::unique(prompt_ids_.begin(), prompt_ids_.end()), prompt_ids_.end());
}

void PenaltyTokens::update(std::span<const int32_t> generated) {
  sorted_.assign(generated.begin(), generated.end());
  std::sort(sorted_.begin(), sorted_.end());
  ids_.clear();
  counts_.clear();
  // A merge of the prompt's distinct ids with the output's runs of equal ids.
  size_t p = 0, g = 0;
  while (p < prompt_ids_.size() || g < sorted_.size()) {
    const bool from_output = p == prompt_ids_.size() || (g < sorted_.size() && sorted_[g] <= prompt_ids_[p]);
    const int32_t id = from_output ? sorted_[g] : prompt_ids_[p];
    int32_t count = 0;
    while (g < sorted_.size() && sorted_[g] == id) ++g, ++count;
    if (p < prompt_ids_.size() && prompt_ids_[p] == id) ++p;
    ids_.push_back(id);
    counts_.push_back(count);
  }
}

}  // namespace herd
