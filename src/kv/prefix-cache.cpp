#include "kv/prefix-cache.h"

#include <algorithm>
#include <bit>

#include "common/check.h"

namespace herd {

uint64_t PrefixCache::default_hash(uint64_t parent, std::span<const int32_t> ids) {
  constexpr uint64_t p1 = 0x9E3779B185EBCA87ULL, p2 = 0xC2B2AE3D27D4EB4FULL, p3 = 0x165667B19E3779F9ULL;
  auto round = [&](uint64_t acc, uint64_t v) { return std::rotl(acc + v * p2, 31) * p1; };
  uint64_t h = round(p3, parent);
  for (int32_t id : ids) h = round(h, uint64_t(uint32_t(id)));
  h ^= h >> 33;
  h *= p2;
  h ^= h >> 29;
  h *= p3;
  return h ^ (h >> 32);
}

PrefixCache::PrefixCache(int32_t n_blocks, HashFn hash) : hash_(hash), entries_(size_t(n_blocks)) {}

std::optional<int32_t> PrefixCache::match(uint64_t hash, Link parent, std::span<const int32_t> ids) const {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  const Entry& e = entries_[size_t(it->second)];
  if (e.parent_serial != parent.serial || !std::ranges::equal(e.ids, ids)) return std::nullopt;
  return it->second;
}

std::optional<PrefixCache::Hit> PrefixCache::find(Link parent, std::span<const int32_t> ids) const {
  const uint64_t h = hash_(parent.hash, ids);
  const std::optional<int32_t> block = match(h, parent, ids);
  if (!block) return std::nullopt;
  return Hit{*block, Link{h, entries_[size_t(*block)].serial}};
}

PrefixCache::Link PrefixCache::insert(int32_t block, Link parent, std::span<const int32_t> ids) {
  HERD_CHECK(entries_[size_t(block)].serial == 0, "block ", block, " is registered twice");
  const uint64_t h = hash_(parent.hash, ids);
  if (const std::optional<int32_t> same = match(h, parent, ids)) return Link{h, entries_[size_t(*same)].serial};
  if (auto it = by_hash_.find(h); it != by_hash_.end()) evict(it->second);
  Entry& e = entries_[size_t(block)];
  e = Entry{h, next_serial_++, parent.serial, std::vector<int32_t>(ids.begin(), ids.end())};
  by_hash_.emplace(h, block);
  return Link{h, e.serial};
}

void PrefixCache::evict(int32_t block) {
  Entry& e = entries_[size_t(block)];
  if (e.serial == 0) return;
  by_hash_.erase(e.hash);
  e = Entry{};
}

}  // namespace herd
