// Loglikelihood of a continuation given a context, tokenized as lm-evaluation-harness does: the
// context's trailing whitespace moves to the continuation, context and context + continuation
// are encoded separately, and the continuation's tokens are those of the whole beyond the
// context's. The whole is what the engine runs; its prompt logprobs at those positions sum to
// the score.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "herd/herd.h"

namespace herd_cli::eval {

// Text as the engine encodes GenerateRequest::text: BOS first when the model adds one,
// special-token text kept as plain text.
herd::Status encode_text(const herd::Tokenizer& tokenizer, const std::string& text, std::vector<int32_t>* ids);

struct ContinuationTokens {
  std::vector<int32_t> ids;  // the whole: context + continuation
  size_t n_context = 0;      // ids[n_context..] are the continuation's tokens
};

// Invalid input when the continuation adds no token, or when there is no token before it to
// condition on (an empty context and no BOS).
herd::Status tokenize_continuation(const herd::Tokenizer& tokenizer, const std::string& context,
                                   const std::string& continuation, ContinuationTokens* out);

// The sum of the continuation tokens' logprobs: the engine's prompt logprobs of a request with
// prompt_logprobs_from = n_context, which are exactly those tokens'.
double continuation_logprob(const std::vector<herd::Logprob>& prompt_logprobs);

}  // namespace herd_cli::eval
