// The public Model API over src/model and src/backend; errors become Status (engine/guarded.h).
#include <algorithm>
#include <numeric>

#include "backend/backend.h"
#include "common/check.h"
#include "engine/guarded.h"
#include "herd/model.h"
#include "model/llama.h"
#include "model/model-dir.h"
#include "model/synthetic.h"

namespace herd {

namespace {

int32_t argmax(const float* row, int64_t n) {
  return int32_t(std::max_element(row, row + n) - row);  // first maximum, as torch.argmax
}

}  // namespace

struct Model::Impl {
  ModelFiles files;  // owns the mapped weights the CPU backend aliases
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> llama;
  ModelInfo info;

  void check_ids(const std::vector<int32_t>& ids, int64_t extra) const {
    HERD_REQUIRE(!ids.empty(), "no input ids");
    for (int32_t id : ids)
      HERD_REQUIRE(id >= 0 && id < info.n_vocab, "token id ", id, " is outside the vocabulary [0, ", info.n_vocab, ")");
    HERD_REQUIRE(int64_t(ids.size()) + extra <= info.max_context, ids.size(), " input tokens plus ", extra,
                 " to generate exceed the context of ", info.max_context, " tokens; raise --ctx (at most ",
                 info.n_ctx_train, ")");
  }
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

const ModelInfo& Model::info() const { return impl_->info; }

Status Model::load(const std::string& path, const ModelOptions& options, std::unique_ptr<Model>* out) {
  return guarded([&] {
    HERD_REQUIRE(options.max_context > 0, "--ctx must be positive, got ", options.max_context);
    auto impl = std::make_unique<Impl>();
    impl->files = load_model_files(path, options.meta_rope_factor);
    const ModelConfig& c = impl->files.config;
    impl->backend = make_backend(options.device, options.n_threads);
    const int64_t n_ctx = std::min(options.max_context, c.n_ctx_train);
    impl->llama = std::make_unique<LlamaModel>(c, impl->files.weights, *impl->backend, n_ctx);

    ModelInfo& i = impl->info;
    i.n_vocab = c.n_vocab;
    i.n_embd = c.n_embd;
    i.n_ff = c.n_ff;
    i.n_layer = c.n_layer;
    i.n_head = c.n_head;
    i.n_head_kv = c.n_head_kv;
    i.head_dim = c.head_dim;
    i.n_ctx_train = c.n_ctx_train;
    i.max_context = n_ctx;
    i.tied_embeddings = c.tied_embeddings;
    i.bos_id = c.bos_id;
    i.eos_ids = c.eos_ids;
    i.dtype = std::string(dtype_name(impl->files.weights.tok_embd.dtype));
    i.device = impl->backend->name();
    out->reset(new Model(std::move(impl)));
  });
}

Status Model::logits(const std::vector<int32_t>& ids, bool all_positions, std::vector<float>* out) {
  return guarded([&] {
    impl_->check_ids(ids, 0);
    const int32_t n = int32_t(ids.size());
    std::vector<int32_t> pos(ids.size()), rows;
    std::iota(pos.begin(), pos.end(), 0);
    if (all_positions) rows = pos;
    else rows = {n - 1};
    *out = impl_->llama->forward(ids, pos, rows);
  });
}

Status Model::generate_greedy(const std::vector<int32_t>& ids, int max_new, std::vector<int32_t>* out,
                              const std::function<bool(int32_t)>& on_token) {
  return guarded([&] {
    HERD_REQUIRE(max_new >= 0, "-n must be >= 0, got ", max_new);
    impl_->check_ids(ids, max_new);
    const int64_t n_vocab = impl_->info.n_vocab;
    const auto& eos = impl_->info.eos_ids;
    std::vector<int32_t> pos(ids.size());
    std::iota(pos.begin(), pos.end(), 0);
    std::vector<int32_t> step_ids = ids;
    int32_t next_pos = int32_t(ids.size());
    for (int i = 0; i < max_new; ++i) {
      const int32_t last = int32_t(step_ids.size()) - 1;
      const std::vector<float> logits = impl_->llama->forward(step_ids, pos, std::vector<int32_t>{last});
      const int32_t tok = argmax(logits.data(), n_vocab);
      out->push_back(tok);
      if (on_token && !on_token(tok)) break;
      if (std::find(eos.begin(), eos.end(), tok) != eos.end()) break;
      step_ids = {tok};
      pos = {next_pos++};
    }
  });
}

Status write_synthetic_model(const SyntheticModelSpec& spec, const std::string& out_dir) {
  return guarded([&] {
    ModelConfig c = parse_hf_config(read_text_file(spec.config_path), spec.config_path);
    if (spec.n_layer > 0) c.n_layer = spec.n_layer;
    if (spec.n_vocab > 0) {
      c.n_vocab = spec.n_vocab;
      // Special ids of the full vocabulary mean nothing in a smaller one.
      if (c.bos_id >= c.n_vocab) c.bos_id = -1;
      std::erase_if(c.eos_ids, [&](int32_t id) { return id >= c.n_vocab; });
    }
    DType dtype;
    if (spec.dtype == "bf16") dtype = DType::bf16;
    else if (spec.dtype == "f16") dtype = DType::f16;
    else if (spec.dtype == "f32") dtype = DType::f32;
    else fail_input("--dtype ", spec.dtype, ": expected bf16, f16 or f32");
    write_synthetic_model(c, dtype, spec.seed, out_dir);
  });
}

std::vector<std::string> available_devices() {
  std::vector<std::string> d{"cpu"};
  if (cuda_usable()) d.push_back("cuda");
  return d;
}

}  // namespace herd
