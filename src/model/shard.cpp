#include "model/shard.h"

#include <cstring>
#include <string>

#include "common/check.h"

namespace herd {

void check_tensor_parallel(const ModelConfig& c, int size, DType wo_dtype, DType down_dtype) {
  HERD_REQUIRE(size >= 1, "the tensor-parallel degree must be at least 1, got ", size);
  std::string why;
  auto need = [&](bool ok, const auto&... what) {
    if (!ok) why += (why.empty() ? "" : "; ") + str_cat(what...);
  };
  need(c.n_head % size == 0, "it must divide the ", c.n_head, " attention heads");
  need(c.n_head_kv % size == 0 || size % c.n_head_kv == 0, "it must divide the ", c.n_head_kv,
       " KV heads or be a multiple of them");
  need(c.n_ff % size == 0, "it must divide the FFN width ", c.n_ff);
  need(c.n_vocab % size == 0, "it must divide the vocabulary of ", c.n_vocab);
  if (why.empty()) {
    const int64_t q_cols = c.n_head / size * c.head_dim, ff_cols = c.n_ff / size;
    need(q_cols % dtype_block(wo_dtype).elems == 0, "each rank's ", q_cols,
         " columns of the attention output projection must be whole ", dtype_name(wo_dtype), " blocks");
    need(ff_cols % dtype_block(down_dtype).elems == 0, "each rank's ", ff_cols,
         " columns of the FFN down projection must be whole ", dtype_name(down_dtype), " blocks");
  }
  HERD_REQUIRE(why.empty(), "this model cannot run at tensor-parallel degree ", size, ": ", why);
}

ShardDims shard_dims(const ModelConfig& c, const Shard& s) {
  HERD_CHECK(s.size >= 1 && s.rank >= 0 && s.rank < s.size);
  ShardDims d;
  d.n_head = c.n_head / s.size;
  d.head0 = s.rank * d.n_head;
  if (c.n_head_kv % s.size == 0) {
    d.n_head_kv = c.n_head_kv / s.size;
    d.head_kv0 = s.rank * d.n_head_kv;
  } else {
    // More ranks than KV heads: this rank's query heads all belong to one group, whose KV head it keeps.
    d.n_head_kv = 1;
    d.head_kv0 = d.head0 / (c.n_head / c.n_head_kv);
  }
  d.n_ff = c.n_ff / s.size;
  d.ff0 = s.rank * d.n_ff;
  d.n_vocab = c.n_vocab / s.size;
  d.vocab0 = s.rank * d.n_vocab;
  return d;
}

TensorView slice_rows(const TensorView& t, int64_t first, int64_t count) {
  HERD_CHECK(t.shape.size() == 2 && first >= 0 && count >= 0 && first + count <= t.shape[0]);
  const size_t row_bytes = dtype_nbytes(t.dtype, t.shape[1]);
  return TensorView{t.dtype, {count, t.shape[1]}, static_cast<const uint8_t*>(t.data) + size_t(first) * row_bytes,
                    t.col_perm};
}

TensorView slice_cols(const TensorView& t, int64_t first, int64_t count, std::vector<uint8_t>& storage) {
  HERD_CHECK(t.shape.size() == 2);
  HERD_REQUIRE(t.col_perm == nullptr, "a GPTQ weight stored in act order (desc_act) cannot be split by its input ",
               "columns over tensor-parallel ranks: its groups are spread over all of them; load it without tensor ",
               "parallelism, or use a checkpoint quantized without act order");
  const int64_t rows = t.shape[0], cols = t.shape[1], blk = dtype_block(t.dtype).elems;
  HERD_CHECK(first >= 0 && count >= 0 && first + count <= cols && first % blk == 0 && count % blk == 0);
  const size_t row_bytes = dtype_nbytes(t.dtype, cols), skip = dtype_nbytes(t.dtype, first),
               take = dtype_nbytes(t.dtype, count);
  storage.resize(size_t(rows) * take);
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(storage.data() + size_t(r) * take, static_cast<const uint8_t*>(t.data) + size_t(r) * row_bytes + skip,
                take);
  return TensorView{t.dtype, {rows, count}, storage.data()};
}

}  // namespace herd
