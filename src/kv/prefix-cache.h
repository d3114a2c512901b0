// Prefix caching: full KV blocks registered by content, so that a request whose tokens start like
// an earlier request's reuses that KV instead of computing it again.
//
// A full block is keyed by hash(parent block's key, its token ids), so the key of block k stands for
// the whole prefix [0, (k + 1) * block_size). A 64-bit key can collide, and reusing KV on a collision
// would silently corrupt the output, so an entry also stores its token ids and the serial of its
// parent entry, and a lookup accepts it only when both equal the caller's. By induction from the
// first block (whose parent is the empty prefix, serial 0), a hit holds exactly the caller's tokens
// at every position. Serials are never reused, so an entry whose parent was evicted cannot be
// matched through another block that later took the parent's key.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace herd {

class PrefixCache {
 public:
  // Tests replace the hash to force collisions.
  using HashFn = uint64_t (*)(uint64_t parent, std::span<const int32_t> ids);
  // xxHash64-style rounds over the parent key and the ids, then its final avalanche.
  static uint64_t default_hash(uint64_t parent, std::span<const int32_t> ids);

  // The end of a chain of full blocks: what the next block is keyed by and verified against.
  struct Link {
    uint64_t hash = 0;
    uint64_t serial = 0;  // 0: the empty prefix
  };
  struct Hit {
    int32_t block;
    Link link;  // for the block after it
  };

  explicit PrefixCache(int32_t n_blocks, HashFn hash = default_hash);

  // The registered block holding exactly `ids` after the prefix that `parent` ends.
  std::optional<Hit> find(Link parent, std::span<const int32_t> ids) const;
  // Registers `block` as holding `ids` after `parent`, and returns the link for its successor. When
  // identical content is registered already, that entry is kept, `block` stays private, and the
  // link is the existing entry's. A different entry under the same key (a true collision, or the
  // same ids after an evicted parent, which can no longer be matched) gives way to the new one.
  Link insert(int32_t block, Link parent, std::span<const int32_t> ids);
  // Forgets what `block` held, because it is about to be overwritten. Unregistered: nothing to do.
  void evict(int32_t block);

  int32_t size() const { return int32_t(by_hash_.size()); }

 private:
  struct Entry {
    uint64_t hash = 0;
    uint64_t serial = 0;  // 0: the block is not registered
    uint64_t parent_serial = 0;
    std::vector<int32_t> ids;
  };
  // The block registered under `hash`, if its content is exactly (parent, ids).
  std::optional<int32_t> match(uint64_t hash, Link parent, std::span<const int32_t> ids) const;

  HashFn hash_;
  std::vector<Entry> entries_;  // by block id
  std::unordered_map<uint64_t, int32_t> by_hash_;
  uint64_t next_serial_ = 1;
};

}  // namespace herd
