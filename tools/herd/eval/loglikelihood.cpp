#include "loglikelihood.h"

namespace herd_cli::eval {

herd::Status encode_text(const herd::Tokenizer& tokenizer, const std::string& text, std::vector<int32_t>* ids) {
  return tokenizer.encode(text, /*allow_special=*/false, tokenizer.adds_bos(), ids);
}

herd::Status tokenize_continuation(const herd::Tokenizer& tokenizer, const std::string& context,
                                   const std::string& continuation, ContinuationTokens* out) {
  // lm-evaluation-harness (_encode_pair): "Answer: " + "B" is scored as "Answer:" + " B", so that
  // the space joins the choice's token as it would in running text.
  const size_t keep = context.find_last_not_of(" \t\n\r\f\v") + 1;  // npos + 1 = 0: all whitespace
  const std::string head = context.substr(0, keep), tail = context.substr(keep) + continuation;
  std::vector<int32_t> context_ids;
  out->ids.clear();
  if (herd::Status s = encode_text(tokenizer, head, &context_ids); !s) return s;
  if (herd::Status s = encode_text(tokenizer, head + tail, &out->ids); !s) return s;
  out->n_context = context_ids.size();
  if (out->n_context == 0)
    return herd::Status::invalid_input("the context is empty and the model starts text without BOS: nothing to "
                                       "condition on");
  if (out->ids.size() <= out->n_context)
    return herd::Status::invalid_input("the continuation '" + continuation + "' adds no token to the context");
  return herd::Status::ok();
}

double continuation_logprob(const std::vector<herd::Logprob>& prompt_logprobs) {
  double sum = 0;
  for (const herd::Logprob& lp : prompt_logprobs) sum += double(lp.logprob);
  return sum;
}

}  // namespace herd_cli::eval
