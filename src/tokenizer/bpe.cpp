#include "tokenizer/bpe.h"

#include <algorithm>
#include <functional>
#include <queue>

#include "common/check.h"

namespace herd::tok {
namespace {

// A candidate merge of the part starting at `left` with the part after it, covering `span`
// bytes. It is stale once either part has changed, which shows as a different span.
struct Candidate {
  int32_t rank;
  uint32_t left;
  uint32_t span;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
};

// Scratch buffers reused across calls on one thread; encode() is const and thread-safe.
struct Scratch {
  std::vector<uint32_t> next;  // [n + 1]: start of the following part (n at the end); prev[] likewise
  std::vector<uint32_t> prev;
  std::vector<int32_t> rank;  // [n]: rank of the part starting there once merged; -1 for a single byte
  std::vector<Candidate> heap;
};

}  // namespace

void bpe_encode_piece(const ByteMap& ranks, std::string_view piece, std::vector<int32_t>& out) {
  if (piece.empty()) return;
  if (const int32_t id = ranks.find(piece); id >= 0) {
    out.push_back(id);
    return;
  }
  const uint32_t n = static_cast<uint32_t>(piece.size());
  thread_local Scratch s;
  s.next.resize(n + 1);
  s.prev.resize(n + 1);
  s.rank.assign(n, -1);
  s.heap.clear();
  for (uint32_t i = 0; i <= n; ++i) {
    s.next[i] = i + 1;
    s.prev[i] = i - 1;  // wraps for i == 0; never read there
  }
  auto rank_of = [&](uint32_t from, uint32_t to) { return ranks.find(piece.substr(from, to - from)); };
  auto push = [&](uint32_t left) {
    const uint32_t right = s.next[left];
    if (right >= n) return;
    const uint32_t end = s.next[right];
    if (const int32_t r = rank_of(left, end); r >= 0) {
      s.heap.push_back({r, left, end - left});
      std::push_heap(s.heap.begin(), s.heap.end(), std::greater<>{});
    }
  };
  for (uint32_t i = 0; i + 1 < n; ++i) push(i);

  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), std::greater<>{});
    const Candidate c = s.heap.back();
    s.heap.pop_back();
    const uint32_t right = s.next[c.left];
    // Stale: `left` was absorbed by its left neighbour (prev of right no longer `left`) or
    // either part has grown since.
    if (right >= n || s.prev[right] != c.left || s.next[right] - c.left != c.span) continue;
    const uint32_t after = s.next[right];
    s.next[c.left] = after;
    s.prev[after] = c.left;
    s.prev[right] = right;  // marks `right` as no longer a part start
    s.rank[c.left] = c.rank;
    if (c.left > 0) push(s.prev[c.left]);
    push(c.left);
  }

  for (uint32_t i = 0; i < n; i = s.next[i]) {
    const int32_t id = s.rank[i] >= 0 ? s.rank[i] : rank_of(i, i + 1);
    if (id >= 0) out.push_back(id);  // else a byte the vocabulary lacks: dropped (bpe-model.h)
  }
}

}  // namespace herd::tok
