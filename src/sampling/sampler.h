// The sampler chain: penalties -> temperature -> top-k -> top-p -> min-p -> draw, one Sampler per
// request with its own seeded generator, so a request's tokens never depend on its batch.
// docs/sampling.md states each parameter's semantics and where they differ from HF and OpenAI.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "common/sampling-params.h"
#include "sampling/penalty-tokens.h"

namespace herd {

// Throws one invalid-input herd::Error listing every out-of-range parameter.
void validate(const SamplingParams& params);

// A kept token and its probability in the distribution the draw uses.
struct TokenProb {
  int32_t id;
  float p;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);  // validates params

  // The chain over one logits row; prompt and generated are the request's token ids so far. A
  // sampled (not greedy) token takes one draw from the generator, even when one token is left.
  int32_t sample(std::span<const float> logits,        // [n_vocab]
                 std::span<const int32_t> prompt,      // [n_prompt]
                 std::span<const int32_t> generated);  // [n_generated]

  // The request's next draw, uniform in [0, 1): what sample() uses, for a device that samples.
  double draw();
  // The draw's inverse CDF: the first token of dist at which the cumulative probability exceeds u.
  static int32_t pick(std::span<const TokenProb> dist, double u);

  // Steps 1-5 of the chain: the tokens the draw chooses from, probabilities summing to 1. Greedy
  // gives the single argmax token. The span lives until the next call on this Sampler.
  std::span<const TokenProb> distribution(std::span<const float> logits,        // [n_vocab]
                                          std::span<const int32_t> prompt,      // [n_prompt]
                                          std::span<const int32_t> generated);  // [n_generated]
  // The same with the penalised tokens given as PenaltyTokens lists them (what a device sampler
  // takes too): each distinct id of prompt and output once, with its count in the output.
  std::span<const TokenProb> distribution(std::span<const float> logits,  // [n_vocab]
                                          PenaltyList penalties);

  const SamplingParams& params() const { return params_; }

 private:
  void apply_penalties(PenaltyList penalties);
  void normalise();  // cands_ probabilities to sum 1
  void keep_top_k();
  void keep_top_p();
  void keep_min_p();

  SamplingParams params_;
  std::mt19937_64 rng_;
  // Buffers reused across steps, so that a step allocates nothing once warm.
  std::vector<float> logits_;     // [n_vocab] the row after penalties
  PenaltyTokens penalties_;       // the prompt-and-output form's tokens, listed
  std::vector<TokenProb> cands_;  // [n_kept] logits, then probabilities, of the kept tokens
  bool sorted_ = false;           // cands_ is in descending order (ties by lower id)
};

}  // namespace herd
