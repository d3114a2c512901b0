#include "kv/kv-cache-manager.h"

#include <algorithm>

#include "common/check.h"

namespace herd {

KvCacheManager::KvCacheManager(int32_t n_blocks, int32_t block_size, PrefixCache::HashFn hash)
    : pool_(n_blocks), cache_(n_blocks, hash), block_size_(block_size) {
  HERD_CHECK(block_size > 0);
}

bool KvCacheManager::ensure(uint64_t id, int64_t n_tokens) {
  std::vector<int32_t>& list = requests_[id].blocks;
  const int64_t need = (n_tokens + block_size_ - 1) / block_size_ - int64_t(list.size());
  if (need <= 0) return true;
  if (need > pool_.n_free()) return false;
  for (int64_t i = 0; i < need; ++i) {
    const int32_t b = *pool_.allocate();
    cache_.evict(b);  // its old contents are about to be overwritten
    list.push_back(b);
  }
  return true;
}

int64_t KvCacheManager::match_prefix(uint64_t id, const std::vector<int32_t>& tokens, int64_t n_prompt) {
  HERD_CHECK(n_prompt >= 1 && n_prompt <= int64_t(tokens.size()), "prompt of ", n_prompt, " tokens out of ",
             tokens.size());
  Request& r = requests_[id];
  HERD_CHECK(r.blocks.empty(), "prefix match for request ", id, " which already holds blocks");
  const int64_t max_blocks = (n_prompt - 1) / block_size_;
  while (int64_t(r.blocks.size()) < max_blocks) {
    const auto hit = cache_.find(r.last, std::span(tokens).subspan(r.blocks.size() * size_t(block_size_),
                                                                     size_t(block_size_)));
    if (!hit) break;
    pool_.retain(hit->block);
    r.blocks.push_back(hit->block);
    r.last = hit->link;
  }
  r.n_hashed = int64_t(r.blocks.size());
  n_hit_blocks_ += r.n_hashed;
  return r.n_hashed * block_size_;
}

void KvCacheManager::commit_full_blocks(uint64_t id, const std::vector<int32_t>& tokens, int64_t n_computed) {
  Request& r = requests_.at(id);
  const int64_t n_full = n_computed / block_size_;
  HERD_CHECK(n_computed <= int64_t(tokens.size()) && n_full <= int64_t(r.blocks.size()), "request ", id,
             " computed ", n_computed, " tokens beyond its tokens or blocks");
  for (; r.n_hashed < n_full; ++r.n_hashed)
    r.last = cache_.insert(r.blocks[size_t(r.n_hashed)], r.last,
                           std::span(tokens).subspan(size_t(r.n_hashed * block_size_), size_t(block_size_)));
}

void KvCacheManager::release(uint64_t id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  // Back to front: a chain is matched from its first block, so its tail should be evicted first.
  for (auto b = it->second.blocks.rbegin(); b != it->second.blocks.rend(); ++b) pool_.release(*b);
  requests_.erase(it);
}

void KvCacheManager::fork(uint64_t parent, uint64_t child) {
  const Request& from = requests_.at(parent);
  HERD_CHECK(!requests_.count(child), "fork into request ", child, " which already exists");
  for (int32_t b : from.blocks) pool_.retain(b);
  requests_[child] = from;
}

bool KvCacheManager::make_writable(uint64_t id, int64_t first_pos, int64_t end_pos, std::vector<BlockCopy>* copies) {
  std::vector<int32_t>& list = requests_.at(id).blocks;
  const int64_t first = first_pos / block_size_, end = std::min<int64_t>((end_pos + block_size_ - 1) / block_size_,
                                                                          int64_t(list.size()));
  int64_t shared = 0;
  for (int64_t i = first; i < end; ++i) shared += pool_.ref_count(list[size_t(i)]) > 1;
  if (shared > pool_.n_free()) return false;
  for (int64_t i = first; i < end; ++i) {
    const int32_t old = list[size_t(i)];
    if (pool_.ref_count(old) == 1) continue;
    const int32_t fresh = *pool_.allocate();
    cache_.evict(fresh);
    copies->push_back({old, fresh});
    pool_.release(old);  // still held by the others
    list[size_t(i)] = fresh;
  }
  return true;
}

const std::vector<int32_t>& KvCacheManager::blocks(uint64_t id) const {
  static const std::vector<int32_t> none;
  auto it = requests_.find(id);
  return it == requests_.end() ? none : it->second.blocks;
}

}  // namespace herd
