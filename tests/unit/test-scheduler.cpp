// The scheduler's decisions, step by step, on sequences without a model.
#include <gtest/gtest.h>

#include "engine/scheduler.h"

namespace herd {
namespace {

Sequence seq(uint64_t id, int64_t n_prompt) {
  Sequence s;
  s.id = s.arrival = id;
  s.tokens.assign(size_t(n_prompt), int32_t(7 + id));  // distinct per sequence: no prefix sharing
  s.n_prompt = n_prompt;
  s.max_tokens = 100;
  return s;
}

// After a step: every emitting sequence gets a new token, as the engine would append.
void run(Scheduler& sched, const std::vector<ScheduledSeq>& step) {
  sched.advance(step);
  for (const auto& item : step)
    if (item.emits) item.seq->tokens.push_back(1);
}

TEST(Scheduler, ChunksPrefillWithinTheTokenBudget) {
  KvCacheManager kv(64, 4);
  Scheduler sched(kv, /*max_batch_tokens=*/10, /*max_seqs=*/8);
  Sequence a = seq(1, 25);
  sched.add(&a);
  auto s1 = sched.schedule();
  ASSERT_EQ(s1.size(), 1u);
  EXPECT_EQ(s1[0].n_new, 10);
  EXPECT_FALSE(s1[0].emits);
  run(sched, s1);
  auto s2 = sched.schedule();
  EXPECT_EQ(s2[0].n_new, 10);
  run(sched, s2);
  auto s3 = sched.schedule();
  EXPECT_EQ(s3[0].n_new, 5);
  EXPECT_TRUE(s3[0].emits);
  run(sched, s3);
  auto s4 = sched.schedule();
  EXPECT_EQ(s4[0].n_new, 1);  // decode
}

TEST(Scheduler, DecodeFirstThenPrefillInOneStep) {
  KvCacheManager kv(64, 4);
  Scheduler sched(kv, 8, 8);
  Sequence a = seq(1, 3), b = seq(2, 20);
  sched.add(&a);
  run(sched, sched.schedule());  // a: prefill 3, emits
  sched.add(&b);
  auto step = sched.schedule();
  ASSERT_EQ(step.size(), 2u);
  EXPECT_EQ(step[0].seq, &a);  // running first: a's decode token
  EXPECT_EQ(step[0].n_new, 1);
  EXPECT_EQ(step[1].seq, &b);  // then b's prefill, cut to the remaining budget
  EXPECT_EQ(step[1].n_new, 7);
  const Batch batch = sched.make_batch(step);
  EXPECT_EQ(batch.n_tokens(), 8);
  EXPECT_EQ(batch.query_start_loc, (std::vector<int32_t>{0, 1, 8}));
  EXPECT_EQ(batch.seq_lens, (std::vector<int32_t>{4, 7}));
  EXPECT_EQ(batch.logits_rows, (std::vector<int32_t>{0}));  // b's chunk does not finish its prompt
  EXPECT_EQ(batch.positions[0], 3);
  EXPECT_EQ(batch.positions[1], 0);
}

TEST(Scheduler, PreemptsTheYoungestWhenBlocksRunOut) {
  KvCacheManager kv(/*n_blocks=*/4, /*block_size=*/4);  // 3 usable blocks = 12 tokens
  Scheduler sched(kv, 64, 8);
  Sequence a = seq(1, 4), b = seq(2, 4);
  sched.add(&a);
  sched.add(&b);
  run(sched, sched.schedule());  // a and b: one block each, both emit (5 tokens each now)
  EXPECT_EQ(kv.n_free_blocks(), 1);
  // Both need a second block for token 5; only one is free: a (older) gets it, b is preempted.
  auto step = sched.schedule();
  ASSERT_EQ(step.size(), 1u);
  EXPECT_EQ(step[0].seq, &a);
  EXPECT_EQ(sched.n_preemptions(), 1);
  EXPECT_EQ(b.n_computed, 0);
  EXPECT_EQ(sched.n_waiting(), 1);
  run(sched, step);
  // b comes back once a finishes. Its first block (tokens 0-3) stayed in the prefix cache when
  // it was preempted, so only token 4 is recomputed.
  sched.remove(&a);
  auto again = sched.schedule();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].seq, &b);
  EXPECT_EQ(b.n_cached, 4);
  EXPECT_EQ(again[0].n_new, 1);
  EXPECT_TRUE(again[0].emits);
  sched.remove(&b);
  EXPECT_EQ(kv.n_free_blocks(), 3);
}

TEST(Scheduler, BatchTableHasARowPerSequence) {
  KvCacheManager kv(16, 2);
  Scheduler sched(kv, 64, 8);
  Sequence a = seq(1, 5), b = seq(2, 1);
  sched.add(&a);
  sched.add(&b);
  const auto step = sched.schedule();
  const Batch batch = sched.make_batch(step);
  EXPECT_EQ(batch.max_blocks, 3);
  ASSERT_EQ(batch.block_table.size(), 6u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(batch.block_table[size_t(i)], kv.blocks(1)[size_t(i)]);
  EXPECT_EQ(batch.block_table[3], kv.blocks(2)[0]);
  EXPECT_EQ(batch.block_table[4], 0);  // padding points at the null block
  EXPECT_EQ(batch.slot_mapping[4], kv.blocks(1)[2] * 2 + 0);
}

}  // namespace
}  // namespace herd
