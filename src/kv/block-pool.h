// Physical KV blocks: reference counts and a free list. Block 0 is the reserved null block,
// never handed out and never in the free list, so that an unused block-table entry (0) still
// points at valid memory.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace herd {

class BlockPool {
 public:
  explicit BlockPool(int32_t n_blocks);  // including the null block

  // The least recently freed block, now with reference count 1, or nullopt when none is left.
  // Oldest first because a free block may still hold cached prefix KV: the longer it has been
  // unused, the less likely it is to be asked for again.
  std::optional<int32_t> allocate();
  // Drops one reference; at zero the block joins the free list as its most recent member.
  void release(int32_t block);
  // Another holder of a block (prefix sharing, forks). A free block is revived: it leaves the free
  // list in O(1), wherever it is, because a prefix-cache hit may pick any cached block.
  void retain(int32_t block);

  int32_t n_free() const { return n_free_; }
  int32_t n_usable() const { return int32_t(ref_.size()) - 1; }  // all but the null block
  int32_t ref_count(int32_t block) const { return ref_[size_t(block)]; }

 private:
  void check_block(int32_t block) const;
  void unlink(int32_t block);

  static constexpr int32_t none = -1;
  std::vector<int32_t> ref_;
  // The free list, doubly linked through block ids: head_ is the least recently freed.
  std::vector<int32_t> prev_, next_;
  int32_t head_ = none, tail_ = none;
  int32_t n_free_ = 0;
};

}  // namespace herd
