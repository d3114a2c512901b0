// Samples that branch off a request once its prompt is computed, and the prompt's logprobs as its
// chunks' logits rows arrive.
#include "common/check.h"
#include "engine/engine-impl.h"

namespace herd {

void Engine::Impl::fork(const Live& parent, Fork& f, const SampledToken& first) {
  auto child = std::make_unique<Live>();
  child->seq = parent.seq;
  child->seq.id = f.id;
  child->seq.prompt_logprobs = false;  // the first sample carries them
  child->sampler = std::move(f.sampler);
  if (parent.stops) child->stops = std::make_unique<StopStringMatcher>(parent.stop_strings);
  if (tokenizer) child->text = std::make_unique<TokenStream>(*tokenizer);
  child->stop_strings = parent.stop_strings;
  child->n_logprobs = parent.n_logprobs;
  child->ignore_eos = parent.ignore_eos;
  Live& c = *child;
  live.emplace(f.id, std::move(child));
  scheduler->add_fork(parent.seq, &c.seq);
  take_token(c, first);
}

void Engine::Impl::collect_prompt_logprobs(Live& l, const ScheduledSeq& item, size_t first_row, size_t n_rows,
                                           const LogitsRow& logits_row) {
  const int64_t first_pos = item.seq->n_computed - int64_t(n_rows);  // n_computed was advanced already
  for (int64_t j = 0; j < int64_t(n_rows); ++j) {
    const int64_t scored = first_pos + j + 1;
    if (scored >= l.seq.n_prompt || scored != l.seq.logprobs_from + int64_t(l.prompt_lp.size())) continue;
    const int32_t token = l.seq.tokens[size_t(scored)];
    if (!all_finite(logits_row(first_row + size_t(j)))) throw Error(ErrorKind::internal, non_finite_logits(scored - 1));
    l.prompt_lp.push_back({token, position_logprobs(logits_row(first_row + size_t(j)), token, 0).token.logprob});
  }
}

}  // namespace herd
