// Physical KV blocks: reference counts and a free list. Block 0 is the reserved null block,
// never handed out, so that an unused block-table entry (0) still points at valid memory.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace herd {

class BlockPool {
 public:
  explicit BlockPool(int32_t n_blocks);  // including the null block

  // A free block with reference count 1, or nullopt when none is left.
  std::optional<int32_t> allocate();
  // Drops one reference; at zero the block returns to the free list.
  void release(int32_t block);
  // Another holder of an allocated block (prefix sharing and forks, later).
  void retain(int32_t block);

  int32_t n_free() const { return int32_t(free_.size()); }
  int32_t n_usable() const { return int32_t(ref_.size()) - 1; }  // all but the null block
  int32_t ref_count(int32_t block) const { return ref_[size_t(block)]; }

 private:
  std::vector<int32_t> ref_;
  std::vector<int32_t> free_;  // a stack: the most recently freed block is reused first
};

}  // namespace herd
