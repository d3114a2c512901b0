#include "model/load-meta-pth.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

#include "common/check.h"
#include "model/torch-checkpoint.h"

namespace herd {

namespace fs = std::filesystem;

namespace {

constexpr int kMaxRanks = 4096;

// "consolidated.07.pth" -> 7; -1 for any other name.
int rank_of(const std::string& file) {
  static constexpr std::string_view head = "consolidated.", tail = ".pth";
  if (!file.starts_with(head) || !file.ends_with(tail) || file.size() <= head.size() + tail.size()) return -1;
  const std::string_view digits = std::string_view(file).substr(head.size(), file.size() - head.size() - tail.size());
  if (digits.size() > 4) return -1;
  int rank = 0;
  for (char ch : digits) {
    if (ch < '0' || ch > '9') return -1;
    rank = rank * 10 + (ch - '0');
  }
  return rank;
}

std::string shard_name(size_t rank) {
  return str_cat("consolidated.", rank < 10 ? "0" : "", rank, ".pth");
}

// How Meta's reference model (llama-models, reference_impl/model.py) splits a tensor over its
// model-parallel ranks: ColumnParallelLinear (wq, wk, wv, w1, w3, output) and
// VocabParallelEmbedding (tok_embeddings) by output rows, RowParallelLinear (wo, w2) by input
// columns. The norms, and any name herd does not know (which assemble_weights then reports), are
// replicated: rank 0's copy is used.
enum class Split { rows, columns, replicated };

Split split_of(const std::string& name) {
  if (name == "tok_embeddings.weight" || name == "output.weight") return Split::rows;
  if (!name.starts_with("layers.")) return Split::replicated;
  for (const char* s : {".attention.wq.weight", ".attention.wk.weight", ".attention.wv.weight",
                        ".feed_forward.w1.weight", ".feed_forward.w3.weight"})
    if (name.ends_with(s)) return Split::rows;
  for (const char* s : {".attention.wo.weight", ".feed_forward.w2.weight"})
    if (name.ends_with(s)) return Split::columns;
  return Split::replicated;
}

// wq and wk: rows in Meta's interleaved order, to be permuted to half-split order.
bool is_qk(const std::string& name) {
  return name.starts_with("layers.") &&
         (name.ends_with(".attention.wq.weight") || name.ends_with(".attention.wk.weight"));
}

// The joined rows (for a row split) or columns (for a column split) of `name` that one
// tensor-parallel rank reads: model/shard.h's split of the same tensor.
std::pair<int64_t, int64_t> rank_range(const std::string& name, const ModelConfig& c, const ShardDims& d) {
  const int64_t hd = c.head_dim;
  if (name.ends_with(".attention.wq.weight") || name.ends_with(".attention.wo.weight"))
    return {d.head0 * hd, (d.head0 + d.n_head) * hd};
  if (name.ends_with(".attention.wk.weight") || name.ends_with(".attention.wv.weight"))
    return {d.head_kv0 * hd, (d.head_kv0 + d.n_head_kv) * hd};
  if (name.starts_with("layers.")) return {d.ff0, d.ff0 + d.n_ff};  // w1, w3 (rows), w2 (columns)
  return {d.vocab0, d.vocab0 + d.n_vocab};                           // tok_embeddings, output
}

// One tensor from its part on every rank (all of one shape and dtype, checked): rank 0's view when
// nothing is to change, else a buffer of the parts joined along the split, with q/k rows permuted
// head by head (each rank holds whole heads). need: only these joined rows or columns are wanted
// (one tensor-parallel rank's); they are copied into zero pages and the rest stays unwritten.
TensorView join_parts(const std::vector<TensorView>& parts, Split split, bool qk, int64_t head_dim,
                      const std::optional<std::pair<int64_t, int64_t>>& need, const std::string& name,
                      const std::string& source, HostWeights& w) {
  const TensorView& p0 = parts[0];
  const size_t n = parts.size();
  if (split == Split::replicated || (n == 1 && !qk)) return p0;
  HERD_REQUIRE(p0.shape.size() == 2, source, ": tensor \"", name, "\" has shape ", shape_str(p0.shape),
               "; Meta's reference model splits it as a matrix");
  const int64_t rows = p0.shape[0], cols = p0.shape[1];
  HERD_REQUIRE(!qk || rows % head_dim == 0, source, ": tensor \"", name, "\" has ", rows,
               " rows on each rank, not whole heads of ", head_dim);
  const size_t row_bytes = dtype_nbytes(p0.dtype, cols), elem = dtype_nbytes(p0.dtype, 1);
  const Shape joined = split == Split::rows ? Shape{rows * int64_t(n), cols} : Shape{rows, cols * int64_t(n)};
  TensorView out{p0.dtype, joined, nullptr};
  uint8_t* buf = nullptr;
  if (need) {
    buf = w.rank_slices.emplace_back(std::make_unique<ZeroPages>(out.nbytes()))->data();
  } else {
    buf = w.owned.emplace_back(out.nbytes()).data();
  }
  // Part r holds joined rows (or columns) [r * extent, (r + 1) * extent); [lo, hi) of them are copied.
  const int64_t extent = split == Split::rows ? rows : cols;
  const int64_t lo = need ? std::max<int64_t>(need->first, 0) : 0;
  const int64_t hi = need ? std::min<int64_t>(need->second, extent * int64_t(n)) : extent * int64_t(n);
  for (size_t r = 0; r < n; ++r) {
    const int64_t a = std::max(lo, int64_t(r) * extent) - int64_t(r) * extent;
    const int64_t b = std::min(hi, int64_t(r + 1) * extent) - int64_t(r) * extent;
    if (a >= b) continue;
    const auto* src = static_cast<const uint8_t*>(parts[r].data);
    if (split == Split::columns) {
      const size_t joined_row = row_bytes * n;
      for (int64_t i = 0; i < rows; ++i)
        std::memcpy(buf + size_t(i) * joined_row + r * row_bytes + size_t(a) * elem,
                    src + size_t(i) * row_bytes + size_t(a) * elem, size_t(b - a) * elem);
    } else if (qk) {
      // Whole heads: a rank's range starts and ends on them.
      HERD_CHECK(a % head_dim == 0 && b % head_dim == 0);
      permute_interleaved_to_half_split(src + size_t(a) * row_bytes, buf + (size_t(r) * rows + size_t(a)) * row_bytes,
                                        (b - a) / head_dim, head_dim, int64_t(row_bytes));
    } else {
      std::memcpy(buf + (size_t(r) * rows + size_t(a)) * row_bytes, src + size_t(a) * row_bytes,
                  size_t(b - a) * row_bytes);
    }
  }
  out.data = buf;
  return out;
}

}  // namespace

std::vector<std::string> find_meta_pth_shards(const std::string& dir) {
  std::map<int, std::string> by_rank;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string file = it->path().filename().string();
    const int rank = rank_of(file);
    if (rank < 0) continue;
    auto [at, fresh] = by_rank.emplace(rank, file);
    HERD_REQUIRE(fresh, dir, ": ", at->second, " and ", file, " are both model-parallel rank ", rank);
  }
  HERD_REQUIRE(!ec, dir, ": cannot list the directory: ", ec.message());
  if (by_rank.empty()) return {};
  const int n = by_rank.rbegin()->first + 1;
  HERD_REQUIRE(n <= kMaxRanks, dir, ": ", by_rank.rbegin()->second, " names rank ", n - 1, " (at most ", kMaxRanks - 1,
               ")");
  std::vector<std::string> paths;
  for (int r = 0; r < n; ++r) {
    auto found = by_rank.find(r);
    HERD_REQUIRE(found != by_rank.end(), dir, ": ", shard_name(size_t(r)), " is missing: the checkpoint has ",
                 "model-parallel ranks 0 to ", n - 1, " (", by_rank.rbegin()->second, " is there)");
    paths.push_back((fs::path(dir) / found->second).string());
  }
  return paths;
}

HostWeights load_meta_pth_weights(const std::vector<std::string>& shards, const ModelConfig& c,
                                  const std::string& dir, const std::optional<Shard>& only_rank) {
  HERD_CHECK(!shards.empty());
  std::optional<ShardDims> dims;
  if (only_rank && only_rank->size > 1) {
    check_tensor_parallel(c, only_rank->size);
    dims = shard_dims(c, *only_rank);
  }
  HostWeights w;
  std::vector<std::map<std::string, TensorView>> by_rank(shards.size());
  for (size_t r = 0; r < shards.size(); ++r) {
    w.torch_files.push_back(std::make_unique<TorchCheckpoint>(shards[r]));
    for (const NamedTensor& t : w.torch_files.back()->tensors()) by_rank[r].emplace(t.name, t.view);
  }

  TensorsByName by_name;
  for (const auto& [name, view0] : by_rank[0]) {
    std::vector<TensorView> parts{view0};
    for (size_t r = 1; r < shards.size(); ++r) {
      auto it = by_rank[r].find(name);
      HERD_REQUIRE(it != by_rank[r].end(), shards[r], ": tensor \"", name, "\" is missing (", shards[0], " has it)");
      const TensorView& v = it->second;
      HERD_REQUIRE(v.shape == view0.shape && v.dtype == view0.dtype, shards[r], ": tensor \"", name, "\" is ",
                   dtype_name(v.dtype), " ", shape_str(v.shape), " but ", dtype_name(view0.dtype), " ",
                   shape_str(view0.shape), " in ", shards[0], "; every rank holds an equal part");
      parts.push_back(v);
    }
    const bool qk = is_qk(name);
    const Split split = split_of(name);
    std::optional<std::pair<int64_t, int64_t>> need;
    if (dims && split != Split::replicated) need = rank_range(name, c, *dims);
    by_name.emplace(name, std::make_pair(join_parts(parts, split, qk, c.head_dim, need, name, shards[0], w),
                                         shards[0]));
  }
  for (size_t r = 1; r < shards.size(); ++r)
    for (const auto& [name, view] : by_rank[r])
      HERD_REQUIRE(by_rank[0].count(name), shards[r], ": tensor \"", name, "\" is not in ", shards[0]);

  // q/k rows are already in half-split order (join_parts permuted them).
  ModelConfig joined = c;
  joined.qk_layout = QkLayout::half_split;
  assemble_weights(by_name, joined, NameScheme::meta, dir, w);
  return w;
}

}  // namespace herd
