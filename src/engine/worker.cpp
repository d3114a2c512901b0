// The engine's worker thread: it takes arrivals and cancels, steps the scheduler and the model,
// and turns each step's logits into tokens and events.
#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "engine/engine-impl.h"

namespace herd {

bool all_finite(std::span<const float> row) {
  return std::all_of(row.begin(), row.end(), [](float v) { return std::isfinite(v); });
}

void Engine::Impl::emit(RequestId id, Event e) {
  std::lock_guard lock(mu);
  if (e.type == Event::Type::finished) --n_unfinished;
  auto it = channels.find(id);
  if (it == channels.end()) return;  // released: nobody reads it
  it->second.events.push_back(std::move(e));
  // With mu held: the reader's condition variable lives only while it waits under mu.
  if (it->second.reader) it->second.reader->notify_one();
}

void Engine::Impl::finish(Live& l, FinishReason reason, std::string error) {
  Event e;
  e.type = Event::Type::finished;
  e.finish_reason = reason;
  e.error = std::move(error);
  e.stop_token = l.stop_token;
  e.stop_string = l.stop_string;
  // What the detokenizer still holds, and then what the stop matcher held back, unless a stop
  // string already ended the text.
  if (l.text) l.text->flush(&e.text);
  if (l.stops) e.text = l.stops->stopped() ? "" : l.stops->feed(e.text).text + l.stops->flush();
  e.usage.prompt_tokens = l.seq.n_prompt;
  e.usage.completion_tokens = l.seq.n_generated();
  e.usage.cached_prompt_tokens = std::min(l.seq.n_cached, l.seq.n_prompt);
  // Samples that never branched off end with their request.
  for (const Fork& f : l.forks) {
    Event fe;
    fe.type = Event::Type::finished;
    fe.finish_reason = reason;
    fe.error = e.error;
    fe.usage.prompt_tokens = l.seq.n_prompt;
    emit(f.id, std::move(fe));
  }
  const RequestId id = l.seq.id;
  scheduler->remove(&l.seq);
  live.erase(id);
  publish_stats();  // before the event, so a caller who saw it also sees the blocks freed
  emit(id, std::move(e));
}

void Engine::Impl::loop() {
  for (;;) {
    std::deque<std::unique_ptr<Live>> arrived;
    std::unordered_set<RequestId> cancelled;
    {
      std::unique_lock lock(mu);
      const bool busy = !live.empty();
      work_cv.wait(lock, [&] { return stopping || busy || !inbox.empty() || !cancels.empty(); });
      if (stopping) break;
      arrived.swap(inbox);
      cancelled.swap(cancels);
    }
    for (auto& l : arrived) {
      scheduler->add(&l->seq);
      const RequestId id = l->seq.id;
      live.emplace(id, std::move(l));
    }
    for (RequestId id : cancelled) cancel_now(id);
    if (!live.empty()) step();
    publish_stats();
  }
  while (!live.empty()) finish(*live.begin()->second, FinishReason::cancelled);
}

void Engine::Impl::step() {
  const std::vector<ScheduledSeq> work = scheduler->schedule();
  if (work.empty()) return;
  // Plain greedy steps pick tokens with the device's argmax. Sampled tokens, logprobs and prompt
  // scores are taken where the logits are when the backend samples on its device, else from the
  // rows on the host. Which rows each sequence has is read before advance() moves its n_computed.
  std::vector<int64_t> rows(work.size());
  bool scoring = false, sampling = false;
  for (size_t i = 0; i < work.size(); ++i) {
    rows[i] = work[i].n_rows();
    scoring |= work[i].scores_prompt() && rows[i] > 0;
    sampling |= work[i].emits && live.at(work[i].seq->id)->needs_logits();
  }
  const bool on_device = (sampling || scoring) && m->runner->samples_on_device();
  const bool want_logits = (scoring || sampling) && !on_device;
  StepSpecs specs;                   // unless plain greedy
  std::vector<SampledToken> picked;  // [specs] on the device
  std::vector<float> logits;         // [n_rows, n_vocab] when want_logits
  std::vector<int32_t> next;         // [n_rows] plain greedy
  try {
    if (on_device || want_logits) specs = step_specs(work, rows);
    const Batch batch = scheduler->make_batch(work);
    std::vector<std::pair<int32_t, int32_t>> copies;  // copy on write, before anything is written
    for (const auto& c : scheduler->copies()) copies.emplace_back(c.from, c.to);
    m->runner->copy_blocks(copies);
    if (on_device) picked = m->runner->forward_sampled(batch, specs.specs);
    else if (want_logits) logits = m->runner->forward(batch);
    else next = m->runner->forward_greedy(batch);
  } catch (const std::exception& e) {
    // A failed step fails the requests in it; the engine stays up for the others.
    for (const ScheduledSeq& item : work) finish(*live.at(item.seq->id), FinishReason::error, e.what());
    return;
  }
  scheduler->advance(work);
  ++stat_steps;
  const size_t n_vocab = size_t(m->info.n_vocab);
  auto logits_row = [&](size_t r) { return std::span<const float>(logits.data() + r * n_vocab, n_vocab); };
  // The results of specs [first, first + n): the device's, or taken here from the rows by on_host.
  auto results = [&](size_t first, size_t n, auto&& on_host) {
    std::vector<SampledToken> out;
    for (size_t k = 0; k < n; ++k) out.push_back(on_device ? picked[first + k] : on_host(k, specs.specs[first + k]));
    return out;
  };
  size_t row = 0;  // past the last logits row of the current sequence
  for (size_t i = 0; i < work.size(); ++i) {
    const ScheduledSeq& item = work[i];
    Live& l = *live.at(item.seq->id);
    row += size_t(rows[i]);
    // A request that fails here (non-finite logits, a sampler error) ends alone; the step goes on.
    // A sequence that emits has a row (its last), so row >= 1 there.
    const RequestId id = item.seq->id;
    try {
      if (!specs.n_score.empty() && specs.n_score[i] > 0)
        take_prompt_scores(l, results(specs.first_score[i], specs.n_score[i], [&](size_t, const SampleSpec& sp) {
                             return score_on_host(sp, logits_row(size_t(sp.row)));
                           }));
      if (!item.emits) continue;
      if (!on_device && !want_logits) {
        const SampledToken greedy{next[row - 1], 0.f, {}};
        emit_step(l, std::span(&greedy, 1));
        continue;
      }
      // The forks' first tokens, then l's.
      emit_step(l, results(specs.first_pick[i], l.forks.size() + 1, [&](size_t k, const SampleSpec& sp) {
                  Sampler* sampler = k < l.forks.size() ? l.forks[k].sampler.get() : l.sampler.get();
                  return pick_on_host(l, sampler, sp, logits_row(size_t(sp.row)));
                }));
    } catch (const std::exception& e) {
      if (auto it = live.find(id); it != live.end()) finish(*it->second, FinishReason::error, e.what());
    }
  }
}

Engine::Impl::StepSpecs Engine::Impl::step_specs(const std::vector<ScheduledSeq>& work,
                                                 const std::vector<int64_t>& rows) {
  StepSpecs out;
  out.first_score.resize(work.size());
  out.n_score.resize(work.size());
  out.first_pick.resize(work.size());
  std::vector<SampleSpec>& specs = out.specs;
  int64_t row = 0;  // the first logits row of work[i]
  for (size_t i = 0; i < work.size(); ++i) {
    const ScheduledSeq& item = work[i];
    Live& l = *live.at(item.seq->id);
    out.first_score[i] = specs.size();
    if (item.scores_prompt()) {
      // The rows cover the chunk's last rows[i] positions; the row of position p scores prompt token
      // p + 1, appended in order, once (a chunk recomputed after preemption scores nothing twice).
      const int64_t first_pos = item.seq->n_computed + item.n_new - rows[i];
      for (int64_t j = 0; j < rows[i]; ++j) {
        const int64_t scored = first_pos + j + 1;
        const int64_t next = l.seq.logprobs_from + int64_t(l.prompt_lp.size() + out.n_score[i]);
        if (scored >= l.seq.n_prompt || scored != next) continue;
        SampleSpec sp;
        sp.row = int32_t(row + j);
        sp.score_token = l.seq.tokens[size_t(scored)];
        specs.push_back(sp);
        ++out.n_score[i];
      }
    }
    row += rows[i];
    out.first_pick[i] = specs.size();
    if (!item.emits) continue;
    // A request's samples share its parameters but for the seed, so its penalties too.
    if (l.sampler && l.sampler->params().penalised()) {
      if (!l.penalties) l.penalties = std::make_unique<PenaltyTokens>(l.prompt());
      l.penalties->update(l.generated());
    }
    auto spec = [&](Sampler* s) {
      SampleSpec sp;
      sp.row = int32_t(row - 1);
      sp.n_top = l.n_logprobs;
      if (s != nullptr) {
        sp.params = s->params();
        if (!sp.params.greedy()) sp.u = s->draw();
      }
      if (sp.params.penalised()) {
        sp.penalty_ids = l.penalties->ids();
        sp.penalty_counts = l.penalties->counts();
      }
      return sp;
    };
    for (Fork& f : l.forks) specs.push_back(spec(f.sampler.get()));
    specs.push_back(spec(l.sampler.get()));
  }
  return out;
}

SampledToken Engine::Impl::score_on_host(const SampleSpec& spec, std::span<const float> logits) {
  SampledToken t;  // id -1: the row holds a NaN or an infinity
  if (!all_finite(logits)) return t;
  t.id = spec.score_token;
  t.logprob = position_logprobs(logits, spec.score_token, 0).token.logprob;
  return t;
}

SampledToken Engine::Impl::pick_on_host(const Live& l, Sampler* sampler, const SampleSpec& spec,
                                        std::span<const float> logits) {
  SampledToken t;  // id -1: the row holds a NaN or an infinity
  if (!all_finite(logits)) return t;
  t.id = sampler != nullptr
             ? Sampler::pick(sampler->distribution(logits, PenaltyList{spec.penalty_ids, spec.penalty_counts}), spec.u)
             : int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  if (l.n_logprobs > 0) {
    const PositionLogprobs lp = position_logprobs(logits, t.id, l.n_logprobs);
    t.logprob = lp.token.logprob;
    for (const auto& top : lp.top) t.top.emplace_back(top.id, top.logprob);
  }
  return t;
}

void Engine::Impl::emit_step(Live& l, std::span<const SampledToken> picks) {
  if (l.seq.prompt_logprobs && l.seq.n_generated() == 0) {
    Event p;
    p.type = Event::Type::prompt;
    p.prompt_logprobs = std::move(l.prompt_lp);
    emit(l.seq.id, std::move(p));
  }
  // The other samples of the request branch off here, before the first one takes its token:
  // they share its blocks and drew their first tokens from the same logits row.
  HERD_CHECK(picks.size() == l.forks.size() + 1, picks.size(), " tokens for ", l.forks.size() + 1, " samples");
  for (size_t f = 0; f < l.forks.size(); ++f) fork(l, l.forks[f], picks[f]);
  l.forks.clear();
  take_token(l, picks.back());
}

void Engine::Impl::take_token(Live& l, const SampledToken& picked) {
  if (picked.id < 0) return finish(l, FinishReason::error, non_finite_logits(int64_t(l.seq.tokens.size()) - 1));
  Event e;
  e.token = picked.id;
  if (l.n_logprobs > 0) {
    e.logprob = picked.logprob;
    for (const auto& [id, logprob] : picked.top) e.top_logprobs.push_back({id, logprob});
  }
  l.seq.tokens.push_back(e.token);
  const auto& eos = m->info.eos_ids;
  const bool eos_hit = !l.ignore_eos && std::find(eos.begin(), eos.end(), e.token) != eos.end();
  // The stop token's own text ("<|eot_id|>") is not part of the reply. An id the model made
  // may still be unknown to a tokenizer smaller than the model's vocabulary: no text then.
  if (l.text && !eos_hit && !l.text->push(e.token, &e.text)) e.text.clear();
  bool stop_hit = false;
  if (l.stops) {
    StopStep st = l.stops->feed(e.text);
    e.text = std::move(st.text);
    stop_hit = st.stop.has_value();
    if (stop_hit) l.stop_string = l.stop_strings[*st.stop];
  }
  if (eos_hit) l.stop_token = e.token;
  emit(l.seq.id, std::move(e));
  if (eos_hit || stop_hit) finish(l, FinishReason::stop);
  else if (l.seq.n_generated() >= l.seq.max_tokens) finish(l, FinishReason::length);
}

void Engine::Impl::cancel_now(RequestId id) {
  if (auto it = live.find(id); it != live.end()) return finish(*it->second, FinishReason::cancelled);
  for (auto& [parent_id, l] : live) {
    auto f = std::find_if(l->forks.begin(), l->forks.end(), [&](const Fork& x) { return x.id == id; });
    if (f == l->forks.end()) continue;
    l->forks.erase(f);
    Event e;
    e.type = Event::Type::finished;
    e.finish_reason = FinishReason::cancelled;
    e.usage.prompt_tokens = l->seq.n_prompt;
    return emit(id, std::move(e));
  }
}

void Engine::Impl::publish_stats() {
  stat_free = kv->n_free_blocks();
  stat_cached = kv->n_cached_blocks();
  stat_running = scheduler->n_running();
  stat_waiting = scheduler->n_waiting();
  stat_preemptions = scheduler->n_preemptions();
}

}  // namespace herd
