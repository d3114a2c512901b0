// The sampler chain: penalties -> temperature -> top-k -> top-p -> min-p -> draw, one Sampler per
// request with its own seeded generator, so a request's tokens never depend on its batch.
// docs/sampling.md states each parameter's semantics and where they differ from HF and OpenAI.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace herd {

// Defaults are the identity for every transform and greedy decoding (temperature 0).
struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (argmax after penalties); else logits / temperature
  int32_t top_k = 0;         // keep the k most likely tokens; 0: off
  float top_p = 1.0f;        // keep the smallest set with cumulative probability >= top_p
  float min_p = 0.0f;        // drop tokens with probability < min_p * the largest one; 0: off
  float repetition_penalty = 1.0f;  // CTRL / HF, over prompt and output; 1: off
  float frequency_penalty = 0.0f;   // OpenAI, per occurrence in the output
  float presence_penalty = 0.0f;    // OpenAI, once per token present in the output
  uint64_t seed = 0;                // the request's generator; the engine picks one when unset

  bool greedy() const { return temperature == 0.0f; }
};

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

  // The chain over one logits row; prompt and generated are the request's token ids so far.
  int32_t sample(std::span<const float> logits,        // [n_vocab]
                 std::span<const int32_t> prompt,      // [n_prompt]
                 std::span<const int32_t> generated);  // [n_generated]

  // Steps 1-5 of the chain: the tokens the draw chooses from, probabilities summing to 1. Greedy
  // gives the single argmax token. The span lives until the next call on this Sampler.
  std::span<const TokenProb> distribution(std::span<const float> logits,        // [n_vocab]
                                          std::span<const int32_t> prompt,      // [n_prompt]
                                          std::span<const int32_t> generated);  // [n_generated]

  const SamplingParams& params() const { return params_; }

 private:
  void apply_penalties(std::span<const int32_t> prompt, std::span<const int32_t> generated);
  void normalise();  // cands_ probabilities to sum 1
  void keep_top_k();
  void keep_top_p();
  void keep_min_p();
  double uniform();  // in [0, 1)

  SamplingParams params_;
  std::mt19937_64 rng_;
  // Buffers reused across steps, so that a step allocates nothing once warm.
  std::vector<float> logits_;     // [n_vocab] the row after penalties
  std::vector<uint8_t> seen_;     // [n_vocab] 1: already penalised this step; zero between steps
  std::vector<int32_t> counts_;   // [n_vocab] occurrences in generated; zero between steps
  std::vector<TokenProb> cands_;  // [n_kept] logits, then probabilities, of the kept tokens
  bool sorted_ = false;           // cands_ is in descending order (ties by lower id)
};

}  // namespace herd
