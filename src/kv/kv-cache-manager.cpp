#include "kv/kv-cache-manager.h"

#include "common/check.h"

namespace herd {

KvCacheManager::KvCacheManager(int32_t n_blocks, int32_t block_size) : pool_(n_blocks), block_size_(block_size) {
  HERD_CHECK(block_size > 0);
}

bool KvCacheManager::ensure(uint64_t id, int64_t n_tokens) {
  std::vector<int32_t>& list = blocks_[id];
  const int64_t need = (n_tokens + block_size_ - 1) / block_size_ - int64_t(list.size());
  if (need <= 0) return true;
  if (need > pool_.n_free()) return false;
  for (int64_t i = 0; i < need; ++i) list.push_back(*pool_.allocate());
  return true;
}

void KvCacheManager::release(uint64_t id) {
  auto it = blocks_.find(id);
  if (it == blocks_.end()) return;
  for (int32_t b : it->second) pool_.release(b);
  blocks_.erase(it);
}

const std::vector<int32_t>& KvCacheManager::blocks(uint64_t id) const {
  static const std::vector<int32_t> none;
  auto it = blocks_.find(id);
  return it == blocks_.end() ? none : it->second;
}

int32_t KvCacheManager::slot(uint64_t id, int64_t pos) const {
  const auto& list = blocks(id);
  HERD_CHECK(pos / block_size_ < int64_t(list.size()), "position ", pos, " beyond the blocks of request ", id);
  return list[size_t(pos / block_size_)] * block_size_ + int32_t(pos % block_size_);
}

}  // namespace herd
