// Token id -> bytes, for every token of a vocabulary (special tokens hold their text).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace herd::tok {

class TokenTable {
 public:
  // Appends a token; its id is the previous size().
  void push_back(std::string_view bytes) {
    arena_.append(bytes);
    ends_.push_back(static_cast<uint32_t>(arena_.size()));
  }
  std::string_view bytes(int32_t id) const {
    return std::string_view(arena_).substr(ends_[id], ends_[id + 1] - ends_[id]);
  }
  int32_t size() const { return static_cast<int32_t>(ends_.size() - 1); }
  bool contains(int32_t id) const { return id >= 0 && id < size(); }

 private:
  std::string arena_;
  std::vector<uint32_t> ends_{0};  // [size() + 1]: token id's bytes are arena_[ends_[id], ends_[id+1])
};

}  // namespace herd::tok
