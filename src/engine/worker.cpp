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
  // Plain greedy steps pick tokens on the device; anything else needs the logits rows. Which
  // rows each sequence has is read before advance() moves its n_computed.
  std::vector<int64_t> rows(work.size());
  std::vector<bool> scores(work.size());
  bool want_logits = false;
  for (size_t i = 0; i < work.size(); ++i) {
    rows[i] = work[i].n_rows();
    scores[i] = work[i].scores_prompt();
    want_logits |= (scores[i] && rows[i] > 0) || (work[i].emits && live.at(work[i].seq->id)->needs_logits());
  }
  std::vector<float> logits;  // [n_rows, n_vocab] when want_logits
  std::vector<int32_t> next;  // [n_rows] otherwise
  try {
    const Batch batch = scheduler->make_batch(work);
    std::vector<std::pair<int32_t, int32_t>> copies;  // copy on write, before anything is written
    for (const auto& c : scheduler->copies()) copies.emplace_back(c.from, c.to);
    m->runner->copy_blocks(copies);
    if (want_logits) logits = m->runner->forward(batch);
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
  size_t row = 0;  // the first logits row of the current sequence
  for (size_t i = 0; i < work.size(); ++i) {
    const ScheduledSeq& item = work[i];
    Live& l = *live.at(item.seq->id);
    const size_t n_rows = size_t(rows[i]);
    row += n_rows;
    // A request that fails here (non-finite logits, a sampler error) ends alone; the step goes on.
    // A sequence that emits has a row (its last), so row >= 1 there.
    const RequestId id = item.seq->id;
    try {
      if (scores[i]) collect_prompt_logprobs(l, item, row - n_rows, n_rows, logits_row);
      if (item.emits)
        emit_step(l, want_logits ? logits_row(row - 1) : std::span<const float>{}, want_logits ? -1 : next[row - 1]);
    } catch (const std::exception& e) {
      if (auto it = live.find(id); it != live.end()) finish(*it->second, FinishReason::error, e.what());
    }
  }
}

void Engine::Impl::emit_step(Live& l, std::span<const float> logits, int32_t picked) {
  if (l.seq.prompt_logprobs && l.seq.n_generated() == 0) {
    Event p;
    p.type = Event::Type::prompt;
    p.prompt_logprobs = std::move(l.prompt_lp);
    emit(l.seq.id, std::move(p));
  }
  // The other samples of the request branch off here, before the first one takes its token:
  // they share its blocks and draw their first tokens from the same logits row.
  if (!l.forks.empty()) {
    for (const Fork& f : l.forks) fork(l, f, logits);
    l.forks.clear();
  }
  take_token(l, logits, picked);
}

void Engine::Impl::take_token(Live& l, std::span<const float> logits, int32_t picked) {
  // The device marks a row with a NaN or an infinity by -1; a host row is checked here.
  if (logits.empty() ? picked < 0 : !all_finite(logits))
    return finish(l, FinishReason::error, non_finite_logits(int64_t(l.seq.tokens.size()) - 1));
  Event e;
  e.token = picked;
  if (!logits.empty()) {
    e.token = l.sampler ? l.sampler->sample(logits, l.prompt(), l.generated())
                        : int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (l.n_logprobs > 0) {
      const PositionLogprobs lp = position_logprobs(logits, e.token, l.n_logprobs);
      e.logprob = lp.token.logprob;
      for (const auto& t : lp.top) e.top_logprobs.push_back({t.id, t.logprob});
    }
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
