// Block pool and per-request block lists: counts worked out by hand.
#include <gtest/gtest.h>

#include <set>

#include "kv/block-pool.h"
#include "kv/kv-cache-manager.h"

namespace herd {
namespace {

TEST(BlockPool, NeverHandsOutTheNullBlock) {
  BlockPool pool(5);
  EXPECT_EQ(pool.n_usable(), 4);
  std::set<int32_t> got;
  while (auto b = pool.allocate()) got.insert(*b);
  EXPECT_EQ(got, (std::set<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(pool.n_free(), 0);
  pool.release(3);
  EXPECT_EQ(pool.allocate(), 3);
}

TEST(BlockPool, ReferenceCounts) {
  BlockPool pool(3);
  const int32_t b = *pool.allocate();
  pool.retain(b);
  EXPECT_EQ(pool.ref_count(b), 2);
  pool.release(b);
  EXPECT_EQ(pool.n_free(), 1);  // still held once
  pool.release(b);
  EXPECT_EQ(pool.n_free(), 2);
  EXPECT_ANY_THROW(pool.release(b));  // double free is a bug, caught
}

TEST(BlockPool, FreeListHandsOutTheLeastRecentlyFreedFirst) {
  BlockPool pool(5);
  for (int32_t b = 1; b <= 4; ++b) EXPECT_EQ(pool.allocate(), b);
  pool.release(3);
  pool.release(1);
  pool.release(4);  // free list, oldest first: 3 1 4
  pool.retain(1);   // revived from the middle
  EXPECT_EQ(pool.ref_count(1), 1);
  EXPECT_EQ(pool.n_free(), 2);
  EXPECT_EQ(pool.allocate(), 3);
  EXPECT_EQ(pool.allocate(), 4);
  EXPECT_EQ(pool.allocate(), std::nullopt);
  pool.release(1);
  pool.release(2);
  EXPECT_EQ(pool.allocate(), 1);
  EXPECT_EQ(pool.allocate(), 2);
  EXPECT_ANY_THROW(pool.retain(0));  // the null block is never held
}

TEST(KvCacheManager, GrowsAllOrNothingAndMapsSlots) {
  KvCacheManager kv(/*n_blocks=*/5, /*block_size=*/4);  // 4 usable blocks = 16 tokens
  EXPECT_EQ(kv.capacity_tokens(), 16);
  ASSERT_TRUE(kv.ensure(1, 5));  // 2 blocks
  EXPECT_EQ(kv.blocks(1).size(), 2u);
  ASSERT_TRUE(kv.ensure(1, 8));  // still 2
  EXPECT_EQ(kv.blocks(1).size(), 2u);
  ASSERT_TRUE(kv.ensure(2, 4));  // 1 block
  EXPECT_FALSE(kv.ensure(3, 9));  // needs 3, 1 free: nothing taken
  EXPECT_EQ(kv.n_free_blocks(), 1);
  EXPECT_TRUE(kv.blocks(3).empty());
  kv.release(1);
  kv.release(2);
  kv.release(3);
  EXPECT_EQ(kv.n_free_blocks(), 4);
}

}  // namespace
}  // namespace herd

namespace herd {
namespace {

TEST(KvCacheManager, ForkSharesBlocksAndCopiesOnFirstWrite) {
  KvCacheManager kv(/*n_blocks=*/8, /*block_size=*/16);  // 7 usable
  ASSERT_TRUE(kv.ensure(1, 20));                           // a full block and a partial one
  const auto parent = kv.blocks(1);
  kv.fork(1, 2);
  EXPECT_EQ(kv.blocks(2), parent);
  EXPECT_EQ(kv.ref_count(parent[0]), 2);
  EXPECT_EQ(kv.n_free_blocks(), 5);
  // The child writes position 20, in the shared partial block: it gets its own copy of it.
  std::vector<KvCacheManager::BlockCopy> copies;
  ASSERT_TRUE(kv.make_writable(2, 20, 21, &copies));
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].from, parent[1]);
  EXPECT_EQ(copies[0].to, kv.blocks(2)[1]);
  EXPECT_NE(kv.blocks(2)[1], parent[1]);
  EXPECT_EQ(kv.blocks(2)[0], parent[0]);  // the full block stays shared
  EXPECT_EQ(kv.ref_count(parent[1]), 1);
  // The parent now owns its partial block alone: writing it copies nothing.
  copies.clear();
  ASSERT_TRUE(kv.make_writable(1, 20, 21, &copies));
  EXPECT_TRUE(copies.empty());
  EXPECT_EQ(kv.n_free_blocks(), 4);
  kv.release(1);
  kv.release(2);
  EXPECT_EQ(kv.n_free_blocks(), 7);
}

TEST(KvCacheManager, CopyOnWriteIsAllOrNothing) {
  KvCacheManager kv(/*n_blocks=*/3, /*block_size=*/4);  // 2 usable
  ASSERT_TRUE(kv.ensure(1, 3));
  kv.fork(1, 2);
  ASSERT_TRUE(kv.ensure(3, 4));  // the last free block
  std::vector<KvCacheManager::BlockCopy> copies;
  EXPECT_FALSE(kv.make_writable(2, 3, 4, &copies));
  EXPECT_TRUE(copies.empty());
  EXPECT_EQ(kv.blocks(2), kv.blocks(1));
}

}  // namespace
}  // namespace herd
