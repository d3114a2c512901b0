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

void Engine::Impl::take_prompt_scores(Live& l, std::span<const SampledToken> scores) {
  for (const SampledToken& t : scores) {
    const int64_t scored = l.seq.logprobs_from + int64_t(l.prompt_lp.size());
    if (t.id < 0) throw Error(ErrorKind::internal, non_finite_logits(scored - 1));
    l.prompt_lp.push_back({t.id, t.logprob});
  }
}

}  // namespace herd
