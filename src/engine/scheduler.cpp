#include "engine/scheduler.h"

#include <algorithm>

#include "common/check.h"

namespace herd {

Scheduler::Scheduler(KvCacheManager& kv, int32_t max_batch_tokens, int32_t max_seqs)
    : kv_(kv), max_batch_tokens_(max_batch_tokens), max_seqs_(max_seqs) {
  HERD_REQUIRE(max_batch_tokens > 0, "the step token budget (max_batch_tokens) must be positive, got ", max_batch_tokens);
  HERD_REQUIRE(max_seqs > 0, "max_seqs must be positive, got ", max_seqs);
}

void Scheduler::add(Sequence* s) { waiting_.push_back(s); }

void Scheduler::add_fork(const Sequence& parent, Sequence* child) {
  kv_.fork(parent.id, child->id);
  running_.insert(std::upper_bound(running_.begin(), running_.end(), child,
                                   [](const Sequence* a, const Sequence* b) { return a->arrival < b->arrival; }),
                  child);
}

void Scheduler::remove(Sequence* s) {
  std::erase(running_, s);
  std::erase(waiting_, s);
  kv_.release(s->id);
}

void Scheduler::preempt(Sequence* s) {
  kv_.release(s->id);
  s->n_computed = 0;  // recomputed from scratch, generated tokens included
  std::erase(running_, s);
  waiting_.push_front(s);
  ++n_preemptions_;
}

std::vector<ScheduledSeq> Scheduler::schedule() {
  std::vector<ScheduledSeq> step;
  copies_.clear();
  int64_t budget = max_batch_tokens_;
  auto take = [&](Sequence* s) {
    const int64_t n_new = std::min<int64_t>(int64_t(s->tokens.size()) - s->n_computed, budget);
    return ScheduledSeq{s, n_new, s->n_computed + n_new == int64_t(s->tokens.size())};
  };
  // Room for the step's tokens, in blocks that are the sequence's own.
  auto fits = [&](const ScheduledSeq& item) {
    const int64_t end = item.seq->n_computed + item.n_new;
    return kv_.ensure(item.seq->id, end) && kv_.make_writable(item.seq->id, item.seq->n_computed, end, &copies_);
  };

  // Running sequences first, oldest first. Only younger ones are preempted, and they come later
  // in this loop, so nothing already scheduled loses its blocks.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence* s = running_[i];
    const ScheduledSeq item = take(s);
    bool preempted_self = false;
    while (!fits(item)) {
      Sequence* victim = running_.back();
      preempt(victim);
      if (victim == s) {
        preempted_self = true;
        break;
      }
    }
    if (preempted_self) break;  // s was the youngest: nothing runs after it
    step.push_back(item);
    budget -= item.n_new;
    ++i;
  }

  // Then waiting sequences, in order, while blocks and budget last.
  while (!waiting_.empty() && budget > 0 && int32_t(running_.size()) < max_seqs_) {
    Sequence* s = waiting_.front();
    // Prompt logprobs need the logits of every position from logprobs_from - 1 on, so only the
    // tokens before it may come from the cache. Otherwise matching all tokens (not only the
    // prompt) lets a preempted sequence find its own blocks.
    if (s->n_computed == 0) {
      const int64_t limit = s->prompt_logprobs ? s->logprobs_from : int64_t(s->tokens.size());
      s->n_computed = s->n_cached = kv_.match_prefix(s->id, s->tokens, limit);
    }
    const ScheduledSeq item = take(s);
    if (!fits(item)) {
      kv_.release(s->id);  // the matched blocks stay cached for the next try
      s->n_computed = 0;
      break;
    }
    waiting_.pop_front();
    running_.insert(std::upper_bound(running_.begin(), running_.end(), s,
                                     [](const Sequence* a, const Sequence* b) { return a->arrival < b->arrival; }),
                    s);
    step.push_back(item);
    budget -= item.n_new;
  }
  return step;
}

void Scheduler::advance(const std::vector<ScheduledSeq>& step) {
  for (const ScheduledSeq& item : step) {
    item.seq->n_computed += item.n_new;
    // Only now: a block may be matched only once its K/V are written.
    kv_.commit_full_blocks(item.seq->id, item.seq->tokens, item.seq->n_computed);
  }
}

Batch Scheduler::make_batch(const std::vector<ScheduledSeq>& step) const {
  Batch b;
  for (const ScheduledSeq& item : step)
    b.add_sequence(item.seq->tokens, item.seq->n_computed, item.n_new, kv_.blocks(item.seq->id), kv_.block_size(),
                   item.n_rows());
  return b;
}

}  // namespace herd
