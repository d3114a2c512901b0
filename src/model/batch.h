// One forward step's work as the host int32 arrays the backend consumes: any mix of prefill
// chunks and decode tokens from several sequences (docs/architecture.md, "One request, end to end").
#pragma once

#include <cstdint>
#include <vector>

namespace herd {

struct Batch {
  std::vector<int32_t> ids;              // [n_tokens]
  std::vector<int32_t> positions;        // [n_tokens]
  std::vector<int32_t> slot_mapping;     // [n_tokens]
  std::vector<int32_t> query_start_loc;  // [n_seqs + 1]
  std::vector<int32_t> seq_lens;         // [n_seqs]
  std::vector<int32_t> block_table;      // [n_seqs, max_blocks], 0 (the null block) past the end
  int32_t max_blocks = 0;
  std::vector<int32_t> logits_rows;      // [n_rows]: tokens whose logits are wanted

  // Appends tokens[n_computed, n_computed + n_new) of a sequence whose KV lives in `blocks`. The
  // last n_rows of them get logits rows: 0 (a prefill chunk), 1 (the next token), n_new (every
  // position: the reference tests), or the positions a prompt is scored from (prompt logprobs).
  void add_sequence(const std::vector<int32_t>& tokens, int64_t n_computed, int64_t n_new,
                    const std::vector<int32_t>& blocks, int32_t block_size, int64_t n_rows);
  int64_t n_tokens() const { return int64_t(ids.size()); }
  int64_t n_seqs() const { return int64_t(seq_lens.size()); }
};

}  // namespace herd
