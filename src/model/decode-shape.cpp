#include "model/decode-shape.h"

#include <algorithm>
#include <bit>

#include "common/check.h"

namespace herd {

std::optional<DecodeShape> decode_shape(const Batch& b) {
  const int64_t n = b.n_tokens();
  if (n == 0 || n > kMaxPaddedDecode || b.n_seqs() != n || int64_t(b.logits_rows.size()) != n) return std::nullopt;
  for (int64_t i = 0; i < n; ++i)
    if (b.query_start_loc[size_t(i)] != i || b.logits_rows[size_t(i)] != i) return std::nullopt;
  DecodeShape s;
  s.n_seqs = n <= 4 ? std::bit_ceil(uint64_t(n)) : (n + 7) / 8 * 8;
  s.max_blocks = int32_t(std::bit_ceil(uint32_t(std::max(b.max_blocks, 8))));
  return s;
}

Batch pad_decode(const Batch& b, const DecodeShape& s) {
  const int64_t n = b.n_tokens();
  HERD_CHECK(s.n_seqs >= n && s.max_blocks >= b.max_blocks, "decode step of ", n, " sequences and ", b.max_blocks,
             " blocks does not fit ", s.n_seqs, " x ", s.max_blocks);
  Batch p;
  p.ids = b.ids;
  p.positions = b.positions;
  p.slot_mapping = b.slot_mapping;
  p.query_start_loc = b.query_start_loc;
  p.seq_lens = b.seq_lens;
  p.logits_rows = b.logits_rows;
  p.max_blocks = s.max_blocks;
  p.block_table.assign(size_t(s.n_seqs) * size_t(s.max_blocks), 0);
  for (int64_t i = 0; i < n; ++i)
    std::copy_n(b.block_table.begin() + i * b.max_blocks, b.max_blocks, p.block_table.begin() + i * s.max_blocks);
  for (int64_t i = n; i < s.n_seqs; ++i) {
    p.ids.push_back(0);
    p.positions.push_back(0);
    p.slot_mapping.push_back(-1);
    p.query_start_loc.push_back(int32_t(i + 1));
    p.seq_lens.push_back(1);
    p.logits_rows.push_back(int32_t(i));
  }
  return p;
}

}  // namespace herd
