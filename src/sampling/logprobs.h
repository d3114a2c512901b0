// Log-probabilities of the raw logits (before any sampling transform), as evaluation and the
// OpenAI-style "logprobs" field report them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace herd {

struct TokenLogprob {
  int32_t id;
  float logprob;
};

// One position's report: the chosen (or given prompt) token and the n_top most likely tokens.
struct PositionLogprobs {
  TokenLogprob token;
  std::vector<TokenLogprob> top;  // [n_top] descending, ties by lower id
};

// log(sum(exp(logits))), stable (the maximum is factored out), summed in double.
double log_sum_exp(std::span<const float> logits);  // [n_vocab]

// out[i] = logits[i] - log_sum_exp(logits).
void log_softmax(std::span<const float> logits,  // [n_vocab]
                 std::span<float> out);          // [n_vocab]

// The n_top most likely tokens, descending, ties by lower id. lse: log_sum_exp(logits).
std::vector<TokenLogprob> top_logprobs(std::span<const float> logits,  // [n_vocab]
                                       double lse, int32_t n_top);

// The logprob of `token` and the n_top alternatives, sharing one log_sum_exp pass.
PositionLogprobs position_logprobs(std::span<const float> logits,  // [n_vocab]
                                   int32_t token, int32_t n_top);

}  // namespace herd
