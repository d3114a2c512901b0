#include "kv/block-pool.h"

#include "common/check.h"

namespace herd {

BlockPool::BlockPool(int32_t n_blocks) : ref_(size_t(n_blocks), 0) {
  HERD_CHECK(n_blocks >= 2, "a KV pool needs the null block and at least one more");
  for (int32_t b = n_blocks - 1; b >= 1; --b) free_.push_back(b);
}

std::optional<int32_t> BlockPool::allocate() {
  if (free_.empty()) return std::nullopt;
  const int32_t b = free_.back();
  free_.pop_back();
  ref_[size_t(b)] = 1;
  return b;
}

void BlockPool::release(int32_t block) {
  HERD_CHECK(block > 0 && block < int32_t(ref_.size()) && ref_[size_t(block)] > 0, "release of free block ", block);
  if (--ref_[size_t(block)] == 0) free_.push_back(block);
}

void BlockPool::retain(int32_t block) {
  HERD_CHECK(block > 0 && block < int32_t(ref_.size()) && ref_[size_t(block)] > 0, "retain of free block ", block);
  ++ref_[size_t(block)];
}

}  // namespace herd
