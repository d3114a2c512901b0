// An open-addressing hash map from byte strings to token ids. It stores no keys of its own:
// each slot holds an id and a hash tag, and the key is compared against the TokenTable.
// Built once, then read-only (safe to share between threads).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "tokenizer/token-table.h"

namespace herd::tok {

inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  uint64_t tail = 0;
  for (size_t i = 0; i < n; ++i) tail |= uint64_t(uint8_t(p[i])) << (8 * i);
  h = (h ^ tail) * 0x94D049BB133111EBull;
  return h ^ (h >> 29);
}

class ByteMap {
 public:
  // Maps the bytes of every id of `table` except those marked in `skip` ([table.size()]);
  // later duplicates of a key are ignored.
  ByteMap(const TokenTable& table, const std::vector<bool>& skip) : table_(&table) {
    size_t cap = 16;
    while (cap < size_t(table.size()) * 2) cap *= 2;
    mask_ = cap - 1;
    slots_.assign(cap, Slot{});
    for (int32_t id = 0; id < table.size(); ++id) {
      if (skip[size_t(id)]) continue;
      const std::string_view key = table.bytes(id);
      if (find(key) >= 0) continue;
      const uint64_t h = hash_bytes(key.data(), key.size());
      size_t i = h & mask_;
      while (slots_[i].id >= 0) i = (i + 1) & mask_;
      slots_[i] = Slot{id, uint32_t(h >> 32)};
    }
  }

  // The id whose bytes are `key`, or -1.
  int32_t find(std::string_view key) const {
    const uint64_t h = hash_bytes(key.data(), key.size());
    const uint32_t tag = uint32_t(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.tag == tag && table_->bytes(s.id) == key) return s.id;
    }
  }

 private:
  struct Slot {
    int32_t id = -1;
    uint32_t tag = 0;
  };
  const TokenTable* table_;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

}  // namespace herd::tok
