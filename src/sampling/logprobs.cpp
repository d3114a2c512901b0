#include "sampling/logprobs.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"

namespace herd {

double log_sum_exp(std::span<const float> logits) {
  HERD_CHECK(!logits.empty(), "empty logits row");
  const float max = *std::max_element(logits.begin(), logits.end());
  HERD_CHECK(std::isfinite(max), "the logits row has no finite maximum");
  // Each term in float (exp of a value <= 0, a relative error near 1e-7), the sum in double so a
  // 128k-token row loses nothing to accumulation.
  double sum = 0.0;
  for (float l : logits) sum += std::exp(l - max);
  return double(max) + std::log(sum);
}

void log_softmax(std::span<const float> logits, std::span<float> out) {
  HERD_CHECK(out.size() == logits.size(), "log_softmax: ", out.size(), " outputs for ",
             logits.size(), " logits");
  const double lse = log_sum_exp(logits);
  for (size_t i = 0; i < logits.size(); ++i) out[i] = float(double(logits[i]) - lse);
}

std::vector<TokenLogprob> top_logprobs(std::span<const float> logits, double lse, int32_t n_top) {
  HERD_CHECK(n_top >= 0, "n_top must be >= 0, got ", n_top);
  const size_t n = std::min(size_t(n_top), logits.size());
  // Rank by logit (the same order as logprob), best first, ties by lower id.
  auto better = [](const TokenLogprob& a, const TokenLogprob& b) {
    return a.logprob > b.logprob || (a.logprob == b.logprob && a.id < b.id);
  };
  // A min-heap (worst on top) of the n best so far: O(n_vocab log n) and no [n_vocab] scratch.
  std::vector<TokenLogprob> top;
  top.reserve(n);
  if (n == 0) return top;
  for (size_t i = 0; i < logits.size(); ++i) {
    const TokenLogprob t{int32_t(i), logits[i]};
    if (top.size() < n) {
      top.push_back(t);
      std::push_heap(top.begin(), top.end(), better);
    } else if (better(t, top.front())) {
      std::pop_heap(top.begin(), top.end(), better);
      top.back() = t;
      std::push_heap(top.begin(), top.end(), better);
    }
  }
  std::sort_heap(top.begin(), top.end(), better);
  for (TokenLogprob& t : top) t.logprob = float(double(t.logprob) - lse);
  return top;
}

PositionLogprobs position_logprobs(std::span<const float> logits, int32_t token, int32_t n_top) {
  HERD_CHECK(token >= 0 && size_t(token) < logits.size(), "token id ", token, " outside [0, ",
             logits.size(), ")");
  const double lse = log_sum_exp(logits);
  return {{token, float(double(logits[size_t(token)]) - lse)}, top_logprobs(logits, lse, n_top)};
}

}  // namespace herd
