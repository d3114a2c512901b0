#include "kv/block-pool.h"

#include "common/check.h"

namespace herd {

BlockPool::BlockPool(int32_t n_blocks)
    : ref_(size_t(n_blocks), 0), prev_(size_t(n_blocks), none), next_(size_t(n_blocks), none) {
  HERD_CHECK(n_blocks >= 2, "a KV pool needs the null block and at least one more");
  for (int32_t b = 1; b < n_blocks; ++b) {
    ref_[size_t(b)] = 1;
    release(b);
  }
}

void BlockPool::check_block(int32_t block) const {
  HERD_CHECK(block > 0 && block < int32_t(ref_.size()), "block ", block, " is not a usable block");
}

void BlockPool::unlink(int32_t block) {
  const int32_t p = prev_[size_t(block)], n = next_[size_t(block)];
  (p == none ? head_ : next_[size_t(p)]) = n;
  (n == none ? tail_ : prev_[size_t(n)]) = p;
  prev_[size_t(block)] = next_[size_t(block)] = none;
  --n_free_;
}

std::optional<int32_t> BlockPool::allocate() {
  if (head_ == none) return std::nullopt;
  const int32_t b = head_;
  unlink(b);
  ref_[size_t(b)] = 1;
  return b;
}

void BlockPool::release(int32_t block) {
  check_block(block);
  HERD_CHECK(ref_[size_t(block)] > 0, "release of free block ", block);
  if (--ref_[size_t(block)] > 0) return;
  prev_[size_t(block)] = tail_;
  (tail_ == none ? head_ : next_[size_t(tail_)]) = block;
  tail_ = block;
  ++n_free_;
}

void BlockPool::retain(int32_t block) {
  check_block(block);
  if (ref_[size_t(block)]++ == 0) unlink(block);
}

}  // namespace herd
