#include "engine/memory-plan.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>

#include "common/check.h"
#include "model/shard.h"

namespace herd {
namespace {

constexpr int64_t kMiB = int64_t(1) << 20, kGiB = int64_t(1) << 30;
constexpr int64_t kDefaultKvBytes = kGiB;  // when the backend cannot tell its free memory
constexpr int64_t kDefaultContexts = 4;
// Scratch the kernels keep whatever the batch: cuBLAS's workspace (32 MiB, src/backend/cuda) and
// the split-K partials of paged attention, which stay under 8 MiB because the kernel splits only
// steps too small to fill the GPU (kernels/paged-attention.cu).
constexpr int64_t kKernelScratchBytes = 40 * kMiB;
// The CUDA context, cuBLAS's loaded kernels and NCCL's buffers: a round guess, not a measurement.
constexpr int64_t kRuntimeReserveBytes = kGiB;

// "47.74 GiB", "8.25 MiB", "3.00 KiB", "512 B": the largest binary unit of which it is at least one.
std::string size_text(int64_t bytes) {
  const char* units[] = {"GiB", "MiB", "KiB"};
  char s[32];
  for (int i = 0; i < 3; ++i) {
    const double unit = double(int64_t(1) << (10 * (3 - i)));
    if (double(bytes) >= unit) {
      std::snprintf(s, sizeof s, "%.2f %s", double(bytes) / unit, units[i]);
      return s;
    }
  }
  return str_cat(bytes, " B");
}

// "[16032, 16384]"
std::string shape(int64_t rows, int64_t cols) { return str_cat("[", rows, ", ", cols, "]"); }

// Bytes of `rows` rows of `cols` elements of type t; a row is whole blocks.
int64_t matrix_bytes(const StoredType& t, int64_t rows, int64_t cols, const char* what) {
  HERD_REQUIRE(cols % t.elems == 0, "each rank's ", cols, " columns of the ", what, " are not whole ", t.name,
               " blocks of ", t.elems);
  return rows * (cols / t.elems * t.bytes);
}

// The distinct type names of a group of tensors: "FP8", "Q4_K/Q6_K".
std::string type_names(const std::vector<const StoredType*>& types) {
  std::set<std::string> names;
  for (const StoredType* t : types) names.insert(t->name);
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : "/") + n;
  return out;
}

ModelConfig llama31(int64_t n_layer, int64_t n_embd, int64_t n_ff, int64_t n_head) {
  ModelConfig c;
  c.n_vocab = 128256;
  c.n_embd = n_embd;
  c.n_ff = n_ff;
  c.n_layer = n_layer;
  c.n_head = n_head;
  c.n_head_kv = 8;
  c.head_dim = 128;
  c.n_ctx_train = 131072;
  c.norm_eps = 1e-5f;
  c.rope_theta = 500000.0f;
  c.rope_scaling = RopeScaling{8.0f, 1.0f, 4.0f, 8192};
  c.tied_embeddings = false;
  c.dtype = DType::bf16;
  c.bos_id = 128000;
  c.eos_ids = {128001, 128008, 128009};
  return c;
}

}  // namespace

// --- KV bytes and the engine's pool

int64_t kv_bytes_per_token(const ModelConfig& c, int64_t elem_bytes, int tp) {
  check_tensor_parallel(c, tp);
  return 2 * c.n_layer * shard_dims(c, Shard{0, tp}).n_head_kv * c.head_dim * elem_bytes;
}

KvPool size_kv_pool(const ModelConfig& c, DType kv_dtype, int64_t free_memory, int64_t kv_memory,
                    double kv_memory_fraction, int32_t block_size, int tp) {
  KvPool pool;
  pool.bytes_per_token = kv_bytes_per_token(c, int64_t(dtype_size(kv_dtype)), tp);
  // By default a share of free memory, but no more than a few full contexts.
  const int64_t share = free_memory > 0 ? int64_t(double(free_memory) * kv_memory_fraction) : kDefaultKvBytes;
  const int64_t budget =
      kv_memory > 0 ? kv_memory : std::min(share, kDefaultContexts * c.n_ctx_train * pool.bytes_per_token);
  const int64_t block_bytes = pool.bytes_per_token * block_size;
  const int64_t n = std::min<int64_t>(budget / block_bytes, INT32_MAX / block_size - 1);
  HERD_REQUIRE(n >= 1, "a KV memory budget of ", budget, " bytes holds no block of ", block_size, " tokens (",
               block_bytes, " bytes); raise it");
  pool.n_blocks = int32_t(n + 1);  // + the null block
  return pool;
}

// --- Types and presets

StoredType stored_type(DType t) {
  const DTypeBlock b = dtype_block(t);
  return {std::string(dtype_name(t)), b.elems, int64_t(b.bytes)};
}

StoredType fp8_type() { return {"FP8", 1, 1}; }

std::optional<StoredType> stored_type_named(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  if (lower == "bf16") return stored_type(DType::bf16);
  if (lower == "f16") return stored_type(DType::f16);
  if (lower == "f32") return stored_type(DType::f32);
  if (lower == "fp8") return fp8_type();
  return std::nullopt;
}

WeightTypes weight_types(const HostWeights& w) {
  WeightTypes t;
  t.tok_embd = stored_type(w.tok_embd.dtype);
  t.output_norm = stored_type(w.output_norm.dtype);
  t.output = stored_type(w.output.dtype);
  for (const LayerWeights& l : w.layers)
    t.layers.push_back({stored_type(l.attn_norm.dtype), stored_type(l.wq.dtype), stored_type(l.wk.dtype),
                        stored_type(l.wv.dtype), stored_type(l.wo.dtype), stored_type(l.ffn_norm.dtype),
                        stored_type(l.w_gate.dtype), stored_type(l.w_up.dtype), stored_type(l.w_down.dtype)});
  return t;
}

WeightTypes uniform_weight_types(int64_t n_layer, const StoredType& matrices, const StoredType& embedding,
                                 const StoredType& norms) {
  WeightTypes t;
  t.tok_embd = t.output = embedding;
  t.output_norm = norms;
  const StoredType& m = matrices;
  t.layers.assign(size_t(n_layer), WeightTypes::Layer{norms, m, m, m, m, norms, m, m, m});
  return t;
}

std::vector<std::string> llama_preset_names() { return {"llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b"}; }

std::optional<ModelConfig> llama_preset(std::string_view name) {
  // layers, hidden size, FFN width, attention heads; all have 8 KV heads of 128 and 128256 tokens.
  if (name == "llama-3.1-8b") return llama31(32, 4096, 14336, 32);
  if (name == "llama-3.1-70b") return llama31(80, 8192, 28672, 64);
  if (name == "llama-3.1-405b") return llama31(126, 16384, 53248, 128);
  return std::nullopt;
}

// --- The plan

MemoryPlan plan_rank_memory(const PlanInput& in) {
  const ModelConfig& c = in.config;
  const int tp = in.tp;
  HERD_REQUIRE(in.n_gpus >= 1 && tp >= 1 && in.n_gpus % tp == 0, "n_gpus (", in.n_gpus,
               ") must be a whole number of tensor-parallel groups of ", tp, " ranks");
  check_tensor_parallel(c, tp);
  HERD_REQUIRE(in.gpu_memory > 0, "gpu_memory must be positive, got ", in.gpu_memory);
  HERD_REQUIRE(in.gpu_util > 0 && in.gpu_util <= 1, "gpu_util must lie in (0, 1], got ", in.gpu_util);
  HERD_REQUIRE(in.context >= 1 && in.context <= c.n_ctx_train, "context (", in.context, " tokens) must lie in [1, ",
               c.n_ctx_train, "], the model's context");
  HERD_REQUIRE(in.block_size > 0 && (in.block_size & (in.block_size - 1)) == 0,
               "the KV block size must be a power of two, got ", in.block_size);
  HERD_REQUIRE(in.max_batch_tokens >= 1, "max_batch_tokens must be at least 1, got ", in.max_batch_tokens);
  HERD_CHECK(int64_t(in.weights.layers.size()) == c.n_layer);

  const ShardDims d = shard_dims(c, Shard{0, tp});
  const int64_t e = c.n_embd, hd = c.head_dim, q_rows = d.n_head * hd, kv_rows = d.n_head_kv * hd;
  MemoryPlan p;
  p.model = in.model;
  p.weight_dtype = in.weight_dtype;
  p.kv_dtype = in.kv_type.name;
  p.n_gpus = in.n_gpus;
  p.tensor_parallel = tp;
  p.n_replicas = in.n_gpus / tp;
  p.n_head_kv_rank = d.n_head_kv;
  p.context = in.context;
  p.block_size = in.block_size;
  p.max_batch_tokens = in.max_batch_tokens;
  p.gpu_memory = in.gpu_memory;
  p.gpu_util = in.gpu_util;
  auto row = [&](std::string item, std::string value, std::string arithmetic) {
    p.rows.push_back({std::move(item), std::move(value), std::move(arithmetic)});
  };

  const std::string kv_split =
      c.n_head_kv % tp == 0
          ? str_cat(d.n_head_kv, " of ", c.n_head_kv, " KV heads")
          : str_cat("1 of ", c.n_head_kv, " KV heads, each held by ", tp / c.n_head_kv, " ranks");
  row("split", str_cat("TP ", tp, p.n_replicas > 1 ? str_cat(" x ", p.n_replicas, " replicas") : ""),
      str_cat("per rank ", d.n_head, " of ", c.n_head, " query heads, ", kv_split, ", ", d.n_ff, " of ", c.n_ff,
              " FFN columns, ", d.n_vocab, " of ", c.n_vocab, " vocabulary rows"));
  p.budget_bytes = int64_t(double(in.gpu_memory) * in.gpu_util);
  char util[32];
  std::snprintf(util, sizeof util, "%g", in.gpu_util);
  row("budget", size_text(p.budget_bytes), str_cat(util, " x ", size_text(in.gpu_memory)));

  // Weights: q/k/v and gate/up split by rows, o and down by columns, the embedding and the LM head
  // by vocabulary rows, the norms whole on every rank (model/shard.h).
  const WeightTypes& w = in.weights;
  std::vector<const StoredType*> attn_types, ffn_types, norm_types = {&w.output_norm};
  int64_t attn = 0, ffn = 0, norms = matrix_bytes(w.output_norm, 1, e, "output norm");
  for (const WeightTypes::Layer& l : w.layers) {
    attn += matrix_bytes(l.wq, q_rows, e, "query projection") + matrix_bytes(l.wk, kv_rows, e, "key projection") +
            matrix_bytes(l.wv, kv_rows, e, "value projection") +
            matrix_bytes(l.wo, e, q_rows, "attention output projection");
    ffn += matrix_bytes(l.w_gate, d.n_ff, e, "FFN gate") + matrix_bytes(l.w_up, d.n_ff, e, "FFN up projection") +
           matrix_bytes(l.w_down, e, d.n_ff, "FFN down projection");
    norms += matrix_bytes(l.attn_norm, 1, e, "attention norm") + matrix_bytes(l.ffn_norm, 1, e, "FFN norm");
    for (const StoredType* t : {&l.wq, &l.wk, &l.wv, &l.wo}) attn_types.push_back(t);
    for (const StoredType* t : {&l.w_gate, &l.w_up, &l.w_down}) ffn_types.push_back(t);
    for (const StoredType* t : {&l.attn_norm, &l.ffn_norm}) norm_types.push_back(t);
  }
  const int64_t embd = matrix_bytes(w.tok_embd, d.n_vocab, e, "token embedding");
  const int64_t head = c.tied_embeddings ? 0 : matrix_bytes(w.output, d.n_vocab, e, "LM head");
  p.weight_bytes = embd + head + attn + ffn + norms;
  row("weights", size_text(p.weight_bytes), "the rows below");
  row("  embedding", size_text(embd), str_cat(shape(d.n_vocab, e), " ", w.tok_embd.name));
  row("  LM head", size_text(head),
      c.tied_embeddings ? "tied: the embedding itself" : str_cat(shape(d.n_vocab, e), " ", w.output.name));
  row("  attention", size_text(attn),
      str_cat(c.n_layer, " layers x (q ", shape(q_rows, e), " + k, v 2 x ", shape(kv_rows, e), " + o ",
              shape(e, q_rows), ") ", type_names(attn_types)));
  row("  FFN", size_text(ffn),
      str_cat(c.n_layer, " layers x (gate, up 2 x ", shape(d.n_ff, e), " + down ", shape(e, d.n_ff), ") ",
              type_names(ffn_types)));
  row("  norms", size_text(norms), str_cat(2 * c.n_layer + 1, " x [", e, "] ", type_names(norm_types)));

  // Workspace of one step of n tokens (LlamaModel's scratch, f32), every token a logits row at worst
  // (prompt logprobs), plus what the backend and the runtime hold.
  const int64_t n = in.max_batch_tokens, max_blocks = (in.context + in.block_size - 1) / in.block_size;
  const int64_t act = 4 * n * (2 * e + 2 * q_rows + 2 * kv_rows + 2 * d.n_ff);
  const int64_t cast = 2 * n * std::max({e, q_rows, d.n_ff});
  // picked rows and their norm [n_rows, n_embd], logits [n_rows, n_vocab]; with several ranks also
  // this rank's slice [n_rows, n_vocab / tp] and the gathered slices [tp, n_rows, n_vocab / tp].
  const int64_t logit_cols = 2 * e + c.n_vocab + (tp > 1 ? d.n_vocab + c.n_vocab : 0);
  const int64_t logits = 4 * n * logit_cols;
  // ids, positions, slots, query starts, sequence lengths, logits rows, the rank interleave and the
  // block table [n_seqs, max_blocks], with at most one sequence per token.
  const int64_t arrays = 4 * n * (max_blocks + 6 + tp);
  p.workspace_bytes = act + cast + logits + arrays + kKernelScratchBytes + kRuntimeReserveBytes;
  row("workspace", size_text(p.workspace_bytes), "an estimate: the rows below");
  row("  activations", size_text(act),
      str_cat(n, " tokens x (2 x ", e, " + 2 x ", q_rows, " + 2 x ", kv_rows, " + 2 x ", d.n_ff, ") x 4 B"));
  row("  GEMM inputs", size_text(cast), str_cat(n, " tokens x max(", e, ", ", q_rows, ", ", d.n_ff, ") x 2 B (16-bit)"));
  row("  logits", size_text(logits),
      tp > 1 ? str_cat(n, " rows x (2 x ", e, " + ", c.n_vocab, " + ", d.n_vocab, " + ", c.n_vocab, ") x 4 B")
             : str_cat(n, " rows x (2 x ", e, " + ", c.n_vocab, ") x 4 B"));
  row("  step arrays", size_text(arrays), str_cat(n, " x (", max_blocks, " blocks + ", 6 + tp, ") x 4 B"));
  row("  kernel scratch", size_text(kKernelScratchBytes), "cuBLAS workspace 32 MiB + attention partials under 8 MiB");
  row("  runtime", size_text(kRuntimeReserveBytes), "CUDA context, cuBLAS kernels, NCCL buffers (a guess)");

  // The KV cache takes the rest, in whole blocks; block 0 is the null block padding points at.
  p.kv_cache_bytes = p.budget_bytes - p.weight_bytes - p.workspace_bytes;
  row("KV cache", p.kv_cache_bytes > 0 ? size_text(p.kv_cache_bytes) : "none",
      str_cat(size_text(p.budget_bytes), " - ", size_text(p.weight_bytes), " - ", size_text(p.workspace_bytes),
              p.kv_cache_bytes > 0 ? "" : str_cat(" = -", size_text(-p.kv_cache_bytes))));
  p.kv_bytes_per_token = kv_bytes_per_token(c, in.kv_type.bytes, tp);
  row("KV per token", str_cat(p.kv_bytes_per_token, " B"),
      str_cat("2 x ", c.n_layer, " layers x ", d.n_head_kv, " KV head", d.n_head_kv == 1 ? "" : "s", " x ", hd, " x ",
              in.kv_type.bytes, " B (", in.kv_type.name, ")"));
  const int64_t block_bytes = p.kv_bytes_per_token * in.block_size;
  p.kv_blocks = p.kv_cache_bytes > 0 ? std::max<int64_t>(0, p.kv_cache_bytes / block_bytes - 1) : 0;
  p.kv_tokens = p.kv_blocks * in.block_size;
  row("KV blocks", str_cat(p.kv_blocks),
      str_cat("KV cache / (", in.block_size, " x ", p.kv_bytes_per_token, " B), less the null block"));
  row("KV tokens", str_cat(p.kv_tokens), str_cat(p.kv_blocks, " x ", in.block_size));
  p.n_sequences = p.kv_blocks / max_blocks;
  row("full contexts", str_cat(p.n_sequences),
      str_cat(p.kv_blocks, " / ", max_blocks, " blocks of ", in.context, " tokens",
              p.n_replicas > 1 ? str_cat(", on each of ", p.n_replicas, " replicas") : ""));

  p.fits = p.n_sequences >= 1;
  if (p.kv_cache_bytes <= 0)
    p.verdict = str_cat("does not fit: the weights (", size_text(p.weight_bytes), ") and workspace (",
                        size_text(p.workspace_bytes), ") exceed the budget of ", size_text(p.budget_bytes), " per GPU by ",
                        size_text(-p.kv_cache_bytes));
  else if (p.kv_blocks == 0)
    p.verdict = str_cat("does not fit: the ", size_text(p.kv_cache_bytes), " left for the KV cache hold no block of ",
                        in.block_size, " tokens");
  else if (!p.fits)
    p.verdict = str_cat("does not fit at this context: the KV cache holds ", p.kv_tokens,
                        " tokens, fewer than one sequence of ", in.context, "; a context of at most ", p.kv_tokens,
                        " tokens fits");
  else
    p.verdict = str_cat("fits: ", p.n_sequences, " sequence", p.n_sequences == 1 ? "" : "s", " of ", in.context,
                        " tokens at once", p.n_replicas > 1 ? str_cat(" on each of ", p.n_replicas, " replicas") : "",
                        " (", p.kv_tokens, " tokens of KV cache)");
  return p;
}

}  // namespace herd
