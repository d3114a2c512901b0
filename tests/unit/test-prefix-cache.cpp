// Prefix caching over the KV manager: which physical blocks a request attaches, worked out by hand
// from the pool's least-recently-freed order (a fresh pool hands out 1, 2, 3, ...).
#include <gtest/gtest.h>

#include <numeric>
#include <span>
#include <vector>

#include "kv/kv-cache-manager.h"

namespace herd {
namespace {

using Ids = std::vector<int32_t>;

Ids iota(int32_t n, int32_t first) {
  Ids v(size_t(n), 0);
  std::iota(v.begin(), v.end(), first);
  return v;
}

// A request that computed all of `tokens` without a prefix hit.
void compute(KvCacheManager& kv, uint64_t id, const Ids& tokens) {
  ASSERT_TRUE(kv.ensure(id, int64_t(tokens.size())));
  kv.commit_full_blocks(id, tokens, int64_t(tokens.size()));
}

TEST(PrefixCache, SecondRequestAttachesASharedThreeBlockPrefix) {
  KvCacheManager kv(/*n_blocks=*/16, /*block_size=*/16);
  const Ids a = iota(50, 1000);
  EXPECT_EQ(kv.match_prefix(1, a, 50), 0);
  compute(kv, 1, a);
  EXPECT_EQ(kv.blocks(1), (Ids{1, 2, 3, 4}));
  EXPECT_EQ(kv.n_cached_blocks(), 3);  // the 4th block holds 2 tokens: not full

  Ids b(a.begin(), a.begin() + 48);
  b.insert(b.end(), {7, 8});
  EXPECT_EQ(kv.match_prefix(2, b, 50), 48);  // 2 tokens left to compute
  EXPECT_EQ(kv.blocks(2), (Ids{1, 2, 3}));
  for (int32_t blk : {1, 2, 3}) EXPECT_EQ(kv.ref_count(blk), 2);
  EXPECT_EQ(kv.n_hit_blocks(), 3);
  ASSERT_TRUE(kv.ensure(2, 50));
  EXPECT_EQ(kv.blocks(2), (Ids{1, 2, 3, 5}));
  kv.commit_full_blocks(2, b, 50);
  EXPECT_EQ(kv.n_cached_blocks(), 3);
  EXPECT_EQ(kv.n_free_blocks(), 10);

  kv.release(1);
  kv.release(2);
  EXPECT_EQ(kv.n_free_blocks(), kv.n_usable_blocks());
  EXPECT_EQ(kv.n_cached_blocks(), 3);  // free, still cached
  EXPECT_EQ(kv.match_prefix(3, a, 50), 48);  // revived from the free list
  EXPECT_EQ(kv.blocks(3), (Ids{1, 2, 3}));
  EXPECT_EQ(kv.n_free_blocks(), 12);
  kv.release(3);
  EXPECT_EQ(kv.n_free_blocks(), kv.n_usable_blocks());
}

TEST(PrefixCache, LastPromptTokenIsAlwaysRecomputed) {
  KvCacheManager kv(16, 16);
  const Ids a = iota(33, 1);
  compute(kv, 1, a);
  EXPECT_EQ(kv.n_cached_blocks(), 2);
  const Ids exactly_two_blocks(a.begin(), a.begin() + 32);
  EXPECT_EQ(kv.match_prefix(2, exactly_two_blocks, 32), 16);  // not 32: token 31 is recomputed
  EXPECT_EQ(kv.match_prefix(3, a, 33), 32);
  EXPECT_EQ(kv.match_prefix(4, a, 17), 16);  // n_prompt, not tokens.size(), sets the cap
  EXPECT_EQ(kv.match_prefix(5, a, 16), 0);
  for (uint64_t id = 1; id <= 5; ++id) kv.release(id);
  EXPECT_EQ(kv.n_free_blocks(), kv.n_usable_blocks());
}

TEST(PrefixCache, DivergingTokenStopsTheChain) {
  KvCacheManager kv(16, 16);
  const Ids a = iota(65, 1);
  compute(kv, 1, a);
  EXPECT_EQ(kv.n_cached_blocks(), 4);
  Ids b = a;
  b[40] = -5;  // in block 2; block 3 is identical but follows a different prefix
  EXPECT_EQ(kv.match_prefix(2, b, 65), 32);
  EXPECT_EQ(kv.blocks(2), (Ids{1, 2}));
  kv.release(1);
  kv.release(2);
  EXPECT_EQ(kv.n_free_blocks(), kv.n_usable_blocks());
}

TEST(PrefixCache, CommitsOnlyNewlyFullBlocksAndKeepsTheFirstOfIdenticalOnes) {
  KvCacheManager kv(16, 4);
  const Ids a = iota(10, 1);
  ASSERT_TRUE(kv.ensure(1, 10));
  kv.commit_full_blocks(1, a, 3);
  EXPECT_EQ(kv.n_cached_blocks(), 0);
  kv.commit_full_blocks(1, a, 4);
  EXPECT_EQ(kv.n_cached_blocks(), 1);
  kv.commit_full_blocks(1, a, 10);
  EXPECT_EQ(kv.n_cached_blocks(), 2);
  kv.commit_full_blocks(1, a, 10);
  EXPECT_EQ(kv.n_cached_blocks(), 2);

  compute(kv, 2, a);  // the same prompt, computed without a hit (say, admitted in the same step)
  EXPECT_EQ(kv.blocks(2), (Ids{4, 5, 6}));
  EXPECT_EQ(kv.n_cached_blocks(), 2);  // its blocks stay private
  kv.release(2);
  kv.release(1);
  EXPECT_EQ(kv.match_prefix(3, a, 10), 8);
  EXPECT_EQ(kv.blocks(3), (Ids{1, 2}));  // request 1's blocks, not request 2's
  kv.release(3);
  EXPECT_EQ(kv.n_free_blocks(), kv.n_usable_blocks());
}

TEST(PrefixCache, FreedBlocksStayMatchableUntilEvictedLeastRecentlyFreedFirst) {
  KvCacheManager kv(/*n_blocks=*/7, /*block_size=*/4);  // 6 usable
  const Ids p1 = iota(5, 10), p2 = iota(5, 20), p3 = iota(5, 30);
  compute(kv, 1, p1);  // blocks 1 2, block 1 cached
  compute(kv, 2, p2);  // blocks 3 4, block 3 cached
  compute(kv, 3, p3);  // blocks 5 6, block 5 cached
  kv.release(2);
  kv.release(1);
  kv.release(3);  // free list, oldest first, each request back to front: 4 3 2 1 6 5
  EXPECT_EQ(kv.n_free_blocks(), 6);
  EXPECT_EQ(kv.n_cached_blocks(), 3);

  const int32_t expect_block[] = {4, 3, 2, 1}, expect_cached[] = {3, 2, 2, 1};
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(kv.ensure(9, 4 * (i + 1)));
    EXPECT_EQ(kv.blocks(9).back(), expect_block[i]);
    EXPECT_EQ(kv.n_cached_blocks(), expect_cached[i]);
  }
  EXPECT_EQ(kv.match_prefix(10, p2, 5), 0);  // evicted with block 3
  EXPECT_EQ(kv.match_prefix(11, p1, 5), 0);  // evicted with block 1
  EXPECT_EQ(kv.match_prefix(12, p3, 5), 4);  // block 5, revived from behind block 6
  EXPECT_EQ(kv.blocks(12), (Ids{5}));
  EXPECT_EQ(kv.n_free_blocks(), 1);
  for (uint64_t id : {9, 10, 11, 12}) kv.release(id);
  EXPECT_EQ(kv.n_free_blocks(), kv.n_usable_blocks());
}

TEST(PrefixCache, HashCollisionsNeverMatchOtherTokens) {
  KvCacheManager kv(16, 4, [](uint64_t, std::span<const int32_t>) -> uint64_t { return 42; });
  compute(kv, 1, Ids{1, 2, 3, 4, 5, 6, 7, 8, 9});
  // Both full blocks share key 42: the second, a different content, took the key over.
  EXPECT_EQ(kv.n_cached_blocks(), 1);
  EXPECT_EQ(kv.match_prefix(2, Ids{5, 6, 7, 8, 9}, 5), 0);      // its ids, after another prefix
  EXPECT_EQ(kv.match_prefix(3, Ids{10, 11, 12, 13, 9}, 5), 0);  // other ids under the same key
  EXPECT_EQ(kv.match_prefix(4, Ids{1, 2, 3, 4, 9}, 5), 0);      // the displaced first block
  compute(kv, 5, Ids{1, 2, 3, 4, 9});  // registered again, taking the key back
  EXPECT_EQ(kv.match_prefix(6, Ids{1, 2, 3, 4, 1}, 5), 4);
  EXPECT_EQ(kv.blocks(6), (Ids{4}));  // request 5's first block (request 1 holds 1 2 3)
  EXPECT_EQ(kv.match_prefix(7, Ids{10, 11, 12, 13, 9}, 5), 0);  // same key and empty parent, other ids
  for (uint64_t id = 1; id <= 7; ++id) kv.release(id);
  EXPECT_EQ(kv.n_free_blocks(), kv.n_usable_blocks());
}

// The parent's identity is checked, not only its key: with a hash that ignores the parent, the same
// ids after a different first block share a key, and must not match.
TEST(PrefixCache, SameIdsAfterADifferentPrefixNeverMatch) {
  KvCacheManager kv(16, 4, [](uint64_t, std::span<const int32_t> ids) {
    return PrefixCache::default_hash(0, ids);
  });
  compute(kv, 1, Ids{1, 2, 3, 4, 5, 6, 7, 8, 0});
  compute(kv, 2, Ids{9, 9, 9, 9, 1, 1, 1, 1, 0});
  EXPECT_EQ(kv.n_cached_blocks(), 4);
  EXPECT_EQ(kv.match_prefix(3, Ids{9, 9, 9, 9, 5, 6, 7, 8, 0}, 9), 4);
  EXPECT_EQ(kv.blocks(3), (Ids{kv.blocks(2)[0]}));
  for (uint64_t id = 1; id <= 3; ++id) kv.release(id);
  EXPECT_EQ(kv.n_free_blocks(), kv.n_usable_blocks());
}

}  // namespace
}  // namespace herd
