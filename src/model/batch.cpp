#include "model/batch.h"

#include <algorithm>

#include "common/check.h"

namespace herd {

void Batch::add_sequence(const std::vector<int32_t>& tokens, int64_t n_computed, int64_t n_new,
                         const std::vector<int32_t>& blocks, int32_t block_size, int64_t n_rows) {
  const int64_t end = n_computed + n_new;
  HERD_CHECK(n_new > 0 && end <= int64_t(tokens.size()) && end <= int64_t(blocks.size()) * block_size,
             "sequence of ", tokens.size(), " tokens, ", blocks.size(), " blocks: cannot run [", n_computed, ", ",
             end, ")");
  HERD_CHECK(n_rows >= 0 && n_rows <= n_new, n_rows, " logits rows of ", n_new, " new tokens");
  if (query_start_loc.empty()) query_start_loc.push_back(0);
  for (int64_t p = n_computed; p < end; ++p) {
    ids.push_back(tokens[size_t(p)]);
    positions.push_back(int32_t(p));
    slot_mapping.push_back(blocks[size_t(p / block_size)] * block_size + int32_t(p % block_size));
  }
  query_start_loc.push_back(int32_t(ids.size()));
  seq_lens.push_back(int32_t(end));
  for (int32_t r = int32_t(ids.size() - size_t(n_rows)); r < int32_t(ids.size()); ++r) logits_rows.push_back(r);

  // Re-pack the table when this sequence needs more columns than the others.
  const int32_t used = int32_t((end + block_size - 1) / block_size);
  if (used > max_blocks) {
    std::vector<int32_t> wider(size_t(n_seqs()) * size_t(used), 0);
    for (int64_t s = 0; s + 1 < n_seqs(); ++s)
      std::copy_n(block_table.begin() + s * max_blocks, max_blocks, wider.begin() + s * used);
    block_table = std::move(wider);
    max_blocks = used;
  } else {
    block_table.resize(size_t(n_seqs()) * size_t(max_blocks), 0);
  }
  std::copy_n(blocks.begin(), used, block_table.begin() + (n_seqs() - 1) * max_blocks);
}

}  // namespace herd
