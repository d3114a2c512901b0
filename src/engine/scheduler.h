// Continuous batching: each step, running sequences get their next tokens first, then waiting
// ones get (possibly chunked) prefill, within a token budget; a waiting sequence first takes
// whatever full blocks of its tokens the prefix cache holds. There is no prefill phase and no
// decode phase: a sequence is (n_computed, tokens). When KV blocks run out, the youngest running
// sequence is preempted (its blocks freed, recomputed later); nothing is lost.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <vector>

#include "kv/kv-cache-manager.h"
#include "model/batch.h"

namespace herd {

struct Sequence {
  uint64_t id = 0;
  uint64_t arrival = 0;           // submission order: preemption takes the youngest
  std::vector<int32_t> tokens;    // prompt, then generated tokens
  int64_t n_prompt = 0;
  int64_t n_computed = 0;         // tokens whose K/V are in the cache
  int64_t max_tokens = 0;
  bool prompt_logprobs = false;   // prompt positions from logprobs_from - 1 on need logits rows
  int64_t logprobs_from = 1;      // the first prompt token scored; those before may be cached
  int64_t n_cached = 0;           // tokens its last admission found in the prefix cache

  int64_t n_generated() const { return int64_t(tokens.size()) - n_prompt; }
};

struct ScheduledSeq {
  Sequence* seq;
  int64_t n_new;  // tokens computed this step
  bool emits;     // the step reaches its last token, so it makes the next one

  // The chunk computes prompt positions whose logits score prompt tokens.
  bool scores_prompt() const { return seq->prompt_logprobs && seq->n_computed < seq->n_prompt; }
  // How many of its new tokens, always the last ones, get logits rows: those from position
  // logprobs_from - 1 on while a prompt is scored (its last one also makes the next token), else
  // the last when it emits.
  int64_t n_rows() const {
    if (scores_prompt())
      return std::clamp<int64_t>(seq->n_computed + n_new - std::max(seq->n_computed, seq->logprobs_from - 1), 0, n_new);
    return emits ? 1 : 0;
  }
};

class Scheduler {
 public:
  Scheduler(KvCacheManager& kv, int32_t max_batch_tokens, int32_t max_seqs);

  void add(Sequence* s);     // joins the back of the waiting queue
  // A sample forked from a running parent: it shares the parent's blocks (copied on first
  // write) and runs at once, with the parent's computed tokens.
  void add_fork(const Sequence& parent, Sequence* child);
  void remove(Sequence* s);  // finished or cancelled: leaves the queues, its blocks are freed

  // Picks the next step's work and grows block lists to hold it. Empty when nothing can run.
  std::vector<ScheduledSeq> schedule();
  // The block copies the last schedule() needs done before its forward pass (copy on write).
  const std::vector<KvCacheManager::BlockCopy>& copies() const { return copies_; }
  // The step ran: every scheduled sequence has n_new more computed tokens, and its blocks that
  // became full join the prefix cache.
  void advance(const std::vector<ScheduledSeq>& step);
  // The dense arrays the backend consumes for a schedule.
  Batch make_batch(const std::vector<ScheduledSeq>& step) const;

  int32_t n_running() const { return int32_t(running_.size()); }
  int32_t n_waiting() const { return int32_t(waiting_.size()); }
  int64_t n_preemptions() const { return n_preemptions_; }

 private:
  void preempt(Sequence* s);

  KvCacheManager& kv_;
  int32_t max_batch_tokens_, max_seqs_;
  std::vector<Sequence*> running_;  // oldest first
  std::deque<Sequence*> waiting_;   // preempted sequences go back to the front
  int64_t n_preemptions_ = 0;
  std::vector<KvCacheManager::BlockCopy> copies_;
};

}  // namespace herd
