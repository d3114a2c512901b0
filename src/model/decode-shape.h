// Decode steps padded to a few fixed shapes, so that one recording of a step (a CUDA graph) serves
// every step of that shape with new inputs: the step's sizes and device addresses must not change.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>

#include "model/batch.h"

namespace herd {

struct DecodeShape {
  int64_t n_seqs = 0;      // sequences = tokens = logits rows
  int32_t max_blocks = 0;  // block table columns
  auto operator<=>(const DecodeShape&) const = default;
};

// Sequence counts up to this many are padded (1, 2, 4, then multiples of 8); larger steps run as they are.
constexpr int64_t kMaxPaddedDecode = 256;

// The fixed shape of a decode step: every sequence one token whose logits row is wanted, rows in
// token order; the sequences rounded up to 1, 2, 4 or a multiple of 8, the table's columns to a
// power of two (at least 8). nullopt for anything else (prefill chunks, prompt scoring, a step of
// more than kMaxPaddedDecode sequences).
std::optional<DecodeShape> decode_shape(const Batch& b);

// b grown to s: sequences after b's of one token (id 0 at position 0, its KV write skipped with slot
// -1) that attend to the null block's slot 0 (seq_len 1, table rows of block 0), each with a logits
// row; b's table rows widened with block 0. The padding rows' outputs mean nothing; b's rows are as
// they were, first.
Batch pad_decode(const Batch& b, const DecodeShape& s);

}  // namespace herd
