#include "engine/loaded-model.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "common/check.h"
#include "common/threadpool.h"
#include "dist/thread-group.h"
#include "engine/process-group.h"
#include "engine/tensor-parallel.h"
#include "model/llama.h"
#include "model/synthetic.h"

namespace herd {
namespace {

// How long rank 0 waits in a collective for the other ranks: they run the same work on equal
// shards, so anything near this means a rank is stuck.
constexpr std::chrono::milliseconds kCollectiveTimeout{std::chrono::minutes(5)};

// What a person asks of a model before using it: its name, size, storage types and defaults.
void describe_files(const ModelFiles& files, ModelInfo& i) {
  std::string gguf_name;
  if (files.weights.gguf) gguf_name = files.weights.gguf->get_string("general.name").value_or("");
  const std::filesystem::path path = std::filesystem::path(files.dir).lexically_normal();
  std::string base = (path.has_filename() ? path : path.parent_path()).filename().string();
  if (base.ends_with(".gguf")) base.resize(base.size() - 5);
  i.name = !gguf_name.empty() ? gguf_name : base.empty() ? "unnamed" : base;
  i.architecture = "llama";  // every loader checks it (GGUF general.architecture, config.json's architectures)

  const HostWeights& w = files.weights;
  std::vector<const TensorView*> matrices = {&w.tok_embd}, norms = {&w.output_norm};
  if (!files.config.tied_embeddings) matrices.push_back(&w.output);
  for (const LayerWeights& l : w.layers) {
    for (const TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) matrices.push_back(t);
    for (const TensorView* t : {&l.attn_norm, &l.ffn_norm}) norms.push_back(t);
  }
  i.n_params = 0;
  std::map<std::string, int> count;
  for (const TensorView* t : matrices) {
    i.n_params += t->numel();
    ++count[std::string(dtype_name(t->dtype))];
  }
  for (const TensorView* t : norms) i.n_params += t->numel();
  std::vector<std::pair<std::string, int>> by_count(count.begin(), count.end());
  std::stable_sort(by_count.begin(), by_count.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  i.weight_types.clear();
  for (const auto& [type, n] : by_count)
    i.weight_types += (i.weight_types.empty() ? "" : ", ") + type + " x" + std::to_string(n);

  i.default_do_sample = files.generation.do_sample;
  i.default_temperature = files.generation.temperature;
  i.default_top_p = files.generation.top_p;
  i.default_top_k = files.generation.top_k;
}

}  // namespace

std::unique_ptr<LoadedModel> load_model(ModelFiles files, const BackendOptions& backend, int tensor_parallel,
                                        const std::optional<ProcessGroup>& group, int32_t block_size,
                                        const std::function<int32_t(const ModelConfig&, Backend&)>& n_blocks) {
  HERD_REQUIRE(block_size > 0 && (block_size & (block_size - 1)) == 0, "the KV block size must be a power of two, got ",
               block_size);
  HERD_REQUIRE(tensor_parallel >= 1, "the tensor-parallel degree must be at least 1, got ", tensor_parallel);
  auto m = std::make_unique<LoadedModel>();
  m->files = std::move(files);
  const ModelConfig& c = m->files.config;
  BackendOptions rank_backend = backend;
  const bool processes = group && group->world_size > 1;
  if (processes) {
    HERD_REQUIRE(group->rank == 0, "rank ", group->rank,
                 " of a process group follows rank 0 (run_follower_rank) instead of loading a model of its own");
    HERD_REQUIRE(tensor_parallel == 1 || tensor_parallel == group->world_size, "a tensor-parallel degree of ",
                 tensor_parallel, ", but the launcher started ", group->world_size,
                 " ranks: they must agree (one rank per process)");
    tensor_parallel = group->world_size;
    rank_backend = group_backend_options(backend, *group);
    m->backend = make_backend(rank_backend);
    m->runner = std::make_unique<TensorParallelModel>(
        c, m->files.weights, *m->backend,
        connect_process_group(*group, c, m->files.weights, *m->backend, backend.exact));
  } else if (tensor_parallel > 1) {
    HERD_REQUIRE(backend.device == "cpu" || (backend.device == "auto" && !cuda_usable()),
                 "tensor-parallel ranks that are threads of one process run on the CPU (device \"cpu\"); to split "
                 "a model over GPUs, start one process per GPU under a launcher (docs/distributed.md)");
    rank_backend.device = "cpu";
    rank_backend.n_threads = threads_per_rank(backend.n_threads, tensor_parallel);
    m->backend = make_backend(rank_backend);
    m->runner = std::make_unique<TensorParallelModel>(
        c, m->files.weights, *m->backend, [rank_backend](int) { return make_backend(rank_backend); },
        make_thread_group(tensor_parallel, kCollectiveTimeout));
  } else {
    m->backend = make_backend(rank_backend);
    m->runner = std::make_unique<LlamaModel>(c, m->files.weights, *m->backend);
  }
  m->n_blocks = n_blocks(c, *m->backend);  // after the weights, so that free memory excludes them
  m->runner->allocate_kv(m->n_blocks, block_size);

  ModelInfo& i = m->info;
  i.n_vocab = c.n_vocab;
  i.n_embd = c.n_embd;
  i.n_ff = c.n_ff;
  i.n_layer = c.n_layer;
  i.n_head = c.n_head;
  i.n_head_kv = c.n_head_kv;
  i.head_dim = c.head_dim;
  i.n_ctx_train = c.n_ctx_train;
  i.tied_embeddings = c.tied_embeddings;
  i.bos_id = c.bos_id;
  i.eos_ids = c.eos_ids;
  // The layers' type names the checkpoint: GGUF files often store the embedding differently.
  const HostWeights& w = m->files.weights;
  i.dtype = std::string(dtype_name(w.layers.empty() ? w.tok_embd.dtype : w.layers[0].w_up.dtype));
  i.device = m->backend->name();
  i.kv_dtype = std::string(dtype_name(m->backend->kv_dtype()));
  i.decode_weight_bytes = m->runner->decode_weight_bytes();
  // The CPU pool's size, as ThreadPool resolves it (0: one per hardware thread).
  if (i.device.starts_with("cpu"))
    i.n_threads = ThreadPool::resolve_size(rank_backend.n_threads) * (processes ? 1 : tensor_parallel);
  i.tensor_parallel = tensor_parallel;
  describe_files(m->files, i);
  return m;
}

ModelFiles synthetic_files(const SyntheticModelSpec& spec) {
  ModelConfig c = parse_hf_config(read_text_file(spec.config_path), spec.config_path);
  if (spec.n_layer > 0) c.n_layer = spec.n_layer;
  if (spec.n_vocab > 0) {
    c.n_vocab = spec.n_vocab;
    // Special ids of the full vocabulary mean nothing in a smaller one.
    if (c.bos_id >= c.n_vocab) c.bos_id = -1;
    std::erase_if(c.eos_ids, [&](int32_t id) { return id >= c.n_vocab; });
  }
  static const std::pair<const char*, DType> kTypes[] = {
      {"bf16", DType::bf16}, {"f16", DType::f16},   {"f32", DType::f32},   {"fp8", DType::fp8}, {"int4", DType::int4},
      {"q8_0", DType::q8_0}, {"q4_0", DType::q4_0}, {"q4_1", DType::q4_1}, {"q6_k", DType::q6_k}};
  for (const auto& [name, dtype] : kTypes)
    if (spec.dtype == name) return make_synthetic_files(c, dtype, spec.seed);
  fail_input("synthetic model dtype ", spec.dtype, ": expected bf16, f16, f32, fp8, int4, q8_0, q4_0, q4_1 or q6_k");
}

void check_token_ids(const std::vector<int32_t>& ids, int64_t n_vocab) {
  for (int32_t id : ids)
    HERD_REQUIRE(id >= 0 && id < n_vocab, "token id ", id, " is outside the vocabulary [0, ", n_vocab, ")");
}

std::string non_finite_logits(int64_t position) {
  return str_cat("the logits at position ", position,
                 " are not finite (NaN or infinity): the model's weights hold non-finite values or its activations "
                 "overflow");
}

}  // namespace herd
