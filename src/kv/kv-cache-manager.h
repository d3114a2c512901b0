// Each request's list of KV blocks, grown as its tokens are computed and freed when it ends or
// is preempted. Host-side bookkeeping only: the device sees block ids through block tables.
//
// Full blocks are registered in a prefix cache (kv/prefix-cache.h) once computed; a new request
// attaches the longest cached chain that starts its tokens. A freed block keeps its cache entry
// until it is allocated again, least recently freed first, so free blocks double as the cache and
// n_free_blocks() counts them: any of them can be evicted on demand.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "kv/block-pool.h"
#include "kv/prefix-cache.h"

namespace herd {

class KvCacheManager {
 public:
  KvCacheManager(int32_t n_blocks, int32_t block_size, PrefixCache::HashFn hash = PrefixCache::default_hash);

  // Makes request `id` hold enough blocks for n_tokens tokens. All or nothing: on false (no room)
  // nothing was allocated, and the caller decides whom to preempt.
  bool ensure(uint64_t id, int64_t n_tokens);
  // For request `id`, which holds no blocks yet: attaches the longest chain of cached full blocks
  // that starts `tokens` and returns how many tokens they cover, whose K/V are therefore computed.
  // Only blocks within tokens[0, n_prompt - 1) count: the last of the tokens to compute is always
  // recomputed, so that its logits exist even on a full hit.
  int64_t match_prefix(uint64_t id, const std::vector<int32_t>& tokens, int64_t n_prompt);
  // Registers the blocks of `id` that are full now that tokens[0, n_computed) are computed. Call
  // after every step; each call costs only the blocks that became full since the last.
  void commit_full_blocks(uint64_t id, const std::vector<int32_t>& tokens, int64_t n_computed);
  // Frees every block of `id` (finished, cancelled or preempted); registered ones stay cached.
  void release(uint64_t id);

  // Request `child` shares every block of `parent` (a forked sample): no K/V is copied until
  // one of them writes into a shared block.
  void fork(uint64_t parent, uint64_t child);
  // A block copy the device must make before a step: K and V of block `from` into block `to`.
  struct BlockCopy {
    int32_t from, to;
  };
  // Copy on write: gives `id` a private copy of every shared block it will write while computing
  // positions [first_pos, end_pos), appending the copies to *copies. All or nothing: false (no
  // room) changes nothing.
  bool make_writable(uint64_t id, int64_t first_pos, int64_t end_pos, std::vector<BlockCopy>* copies);

  const std::vector<int32_t>& blocks(uint64_t id) const;

  int32_t block_size() const { return block_size_; }
  int32_t n_free_blocks() const { return pool_.n_free(); }
  int32_t n_usable_blocks() const { return pool_.n_usable(); }
  int64_t capacity_tokens() const { return int64_t(pool_.n_usable()) * block_size_; }
  int32_t ref_count(int32_t block) const { return pool_.ref_count(block); }
  // Blocks registered in the prefix cache, held or free.
  int32_t n_cached_blocks() const { return cache_.size(); }
  // Blocks attached by match_prefix since construction.
  int64_t n_hit_blocks() const { return n_hit_blocks_; }

 private:
  struct Request {
    std::vector<int32_t> blocks;
    int64_t n_hashed = 0;     // leading blocks already matched or registered
    PrefixCache::Link last;   // the chain after them
  };

  BlockPool pool_;
  PrefixCache cache_;
  int32_t block_size_;
  std::unordered_map<uint64_t, Request> requests_;
  int64_t n_hit_blocks_ = 0;
};

}  // namespace herd
