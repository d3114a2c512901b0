// Which part of the model one tensor-parallel rank holds (Megatron-style; docs/distributed.md):
// q/k/v and gate/up split by output rows (whole heads, whole FFN columns), o and down by input
// columns, the embedding and the LM head by vocabulary rows, the norms whole. KV heads split when the
// degree divides their count; past it (degree a multiple of the count) each rank holds one KV head,
// the same one as its neighbours, as vLLM does.
#pragma once

#include <cstdint>
#include <vector>

#include "common/tensor.h"
#include "model/config.h"

namespace herd {

struct Shard {
  int rank = 0;
  int size = 1;
};

// One rank's extents: [first, first + count) of each split dimension.
struct ShardDims {
  int64_t n_head = 0, head0 = 0;        // query heads
  int64_t n_head_kv = 0, head_kv0 = 0;  // KV heads
  int64_t n_ff = 0, ff0 = 0;            // FFN columns
  int64_t n_vocab = 0, vocab0 = 0;      // vocabulary rows
};

// Invalid input, naming every reason at once, unless c splits over `size` ranks: size divides the
// heads, the FFN width and the vocabulary; it divides the KV heads or is a multiple of them; and the
// column splits of o and down fall on whole quantization blocks of their stored types.
void check_tensor_parallel(const ModelConfig& c, int size, DType wo_dtype = DType::f32, DType down_dtype = DType::f32);
ShardDims shard_dims(const ModelConfig& c, const Shard& s);

// Rows [first, first + count) of a [rows, cols] matrix: a view of the same memory.
TensorView slice_rows(const TensorView& t, int64_t first, int64_t count);
// Columns [first, first + count) of a [rows, cols] matrix, copied into `storage` (which the view
// then points into); first and count are whole blocks of a quantized type.
TensorView slice_cols(const TensorView& t, int64_t first, int64_t count, std::vector<uint8_t>& storage);

}  // namespace herd
