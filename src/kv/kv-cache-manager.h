// Each request's list of KV blocks, grown as its tokens are computed and freed when it ends or
// is preempted. Host-side bookkeeping only: the device sees block ids through block tables.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "kv/block-pool.h"

namespace herd {

class KvCacheManager {
 public:
  KvCacheManager(int32_t n_blocks, int32_t block_size);

  // Makes request `id` hold enough blocks for n_tokens tokens. All or nothing: on false (no room)
  // nothing was allocated, and the caller decides whom to preempt.
  bool ensure(uint64_t id, int64_t n_tokens);
  // Frees every block of `id` (finished, cancelled or preempted).
  void release(uint64_t id);

  const std::vector<int32_t>& blocks(uint64_t id) const;
  // slot = block * block_size + offset of position `pos` of request `id`.
  int32_t slot(uint64_t id, int64_t pos) const;

  int32_t block_size() const { return block_size_; }
  int32_t n_free_blocks() const { return pool_.n_free(); }
  int32_t n_usable_blocks() const { return pool_.n_usable(); }
  int64_t capacity_tokens() const { return int64_t(pool_.n_usable()) * block_size_; }

 private:
  BlockPool pool_;
  int32_t block_size_;
  std::unordered_map<uint64_t, std::vector<int32_t>> blocks_;
};

}  // namespace herd
