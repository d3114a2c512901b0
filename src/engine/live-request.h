// One request as the engine's worker holds it: its sequence plus what only the engine needs (its
// detokenizer, how it picks tokens, its stop strings, the samples still to branch off it).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/scheduler.h"
#include "herd/engine.h"
#include "herd/tokenizer.h"
#include "sampling/logprobs.h"
#include "sampling/penalty-tokens.h"
#include "sampling/sampler.h"
#include "sampling/stop-strings.h"

namespace herd {

// A sample still to branch off a request when its prompt is done.
struct Fork {
  RequestId id;
  std::unique_ptr<Sampler> sampler;  // null: plain greedy
};

// A sequence plus what only the engine needs: its detokenizer and how it picks tokens.
struct Live {
  Sequence seq;
  std::unique_ptr<TokenStream> text;
  std::unique_ptr<Sampler> sampler;          // null: plain greedy, picked on the device
  std::unique_ptr<PenaltyTokens> penalties;  // with penalties: the tokens they touch (made at the first token)
  std::unique_ptr<StopStringMatcher> stops;  // null: no stop strings
  std::vector<std::string> stop_strings;     // what `stops` matches, for forked samples
  std::vector<Fork> forks;                   // the request's other samples, before they branch
  int32_t n_logprobs = 0;
  std::vector<Logprob> prompt_lp;  // prompt tokens 1.. scored so far (token 0 has no context)
  bool ignore_eos = false;
  int32_t stop_token = -1;  // the end-of-sequence id that ended it
  std::string stop_string;  // or the stop string

  // Forks draw from the parent's logits row, so a request with samples to branch needs it too.
  bool needs_logits() const { return sampler != nullptr || n_logprobs > 0 || !forks.empty(); }
  std::span<const int32_t> prompt() const { return {seq.tokens.data(), size_t(seq.n_prompt)}; }
  std::span<const int32_t> generated() const {
    return {seq.tokens.data() + seq.n_prompt, size_t(seq.n_generated())};
  }
};

}  // namespace herd
