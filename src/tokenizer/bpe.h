// Byte-pair merging with tiktoken's semantics (docs/llama31.md, "BPE merging"): a piece that is a token
// is that token; otherwise start from single bytes and repeatedly merge the adjacent pair
// whose concatenation is the lowest-ranked token (leftmost on ties) until none is a token.
// The rank of a token is its id. A heap keeps it O(n log n) on long pieces.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/byte-map.h"

namespace herd::tok {

// Appends the ids of `piece` to `out`. Every single byte of `piece` must be a token (the
// loaders check that all 256 are).
void bpe_encode_piece(const ByteMap& ranks, std::string_view piece, std::vector<int32_t>& out);

}  // namespace herd::tok
