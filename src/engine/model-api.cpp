// The single-sequence Model API over src/model; errors become Status (engine/guarded.h).
#include <algorithm>
#include <numeric>

#include "common/check.h"
#include "engine/guarded.h"
#include "engine/loaded-model.h"
#include "engine/process-group.h"
#include "herd/model.h"
#include "model/synthetic.h"

namespace herd {

namespace {
constexpr int32_t kBlockSize = 16;
}  // namespace

struct Model::Impl {
  std::unique_ptr<LoadedModel> m;
  std::vector<int32_t> blocks;  // the one sequence owns every block but the null one, in order

  void check_ids(const std::vector<int32_t>& ids, int64_t extra) const {
    HERD_REQUIRE(!ids.empty(), "no input ids");
    check_token_ids(ids, m->info.n_vocab);
    HERD_REQUIRE(int64_t(ids.size()) + extra <= m->info.max_context, ids.size(), " input tokens plus ", extra,
                 " to generate exceed the context of ", m->info.max_context, " tokens; load the model with a larger max_context (at most ",
                 m->info.n_ctx_train, ")");
  }
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

const ModelInfo& Model::info() const { return impl_->m->info; }

Status Model::load(const std::string& path, const ModelOptions& options, std::unique_ptr<Model>* out) {
  return guarded([&] {
    HERD_REQUIRE(options.max_context > 0, "max_context must be positive, got ", options.max_context);
    auto impl = std::make_unique<Impl>();
    int64_t n_ctx = 0;
    const BackendOptions backend{options.device, options.n_threads, options.exact, kv_fp8_named(options.kv_dtype)};
    ModelFiles files = load_model_files(path, options.meta_rope_factor, process_shard(options.process_group));
    impl->m = load_model(std::move(files), backend, options.tensor_parallel, options.process_group, kBlockSize,
                         [&](const ModelConfig& c, Backend&) {
                           n_ctx = std::min(options.max_context, c.n_ctx_train);
                           return int32_t((n_ctx + kBlockSize - 1) / kBlockSize + 1);
                         });
    impl->m->info.max_context = n_ctx;
    impl->blocks.resize(size_t(impl->m->n_blocks - 1));
    std::iota(impl->blocks.begin(), impl->blocks.end(), 1);
    out->reset(new Model(std::move(impl)));
  });
}

Status Model::logits(const std::vector<int32_t>& ids, bool all_positions, std::vector<float>* out) {
  return guarded([&] {
    impl_->check_ids(ids, 0);
    Batch b;
    b.add_sequence(ids, 0, int64_t(ids.size()), impl_->blocks, kBlockSize,
                   all_positions ? int64_t(ids.size()) : 1);
    *out = impl_->m->runner->forward(b);
  });
}

Status Model::generate_greedy(const std::vector<int32_t>& ids, int max_new, std::vector<int32_t>* out,
                              const std::function<bool(int32_t)>& on_token) {
  return guarded([&] {
    HERD_REQUIRE(max_new >= 0, "the number of tokens to generate must be >= 0, got ", max_new);
    impl_->check_ids(ids, max_new);
    const auto& eos = impl_->m->info.eos_ids;
    std::vector<int32_t> tokens = ids;
    int64_t n_computed = 0;
    for (int i = 0; i < max_new; ++i) {
      Batch b;
      b.add_sequence(tokens, n_computed, int64_t(tokens.size()) - n_computed, impl_->blocks, kBlockSize, 1);
      n_computed = int64_t(tokens.size());
      const int32_t tok = impl_->m->runner->forward_greedy(b)[0];
      if (tok < 0) throw Error(ErrorKind::internal, non_finite_logits(n_computed - 1));
      tokens.push_back(tok);
      out->push_back(tok);
      if (on_token && !on_token(tok)) break;
      if (std::find(eos.begin(), eos.end(), tok) != eos.end()) break;
    }
  });
}

Status write_synthetic_model(const SyntheticModelSpec& spec, const std::string& out_dir) {
  return guarded([&] {
    HERD_REQUIRE(spec.dtype == "bf16" || spec.dtype == "f16" || spec.dtype == "f32",
                 "a synthetic model written to files is bf16, f16 or f32 (herd quantize makes the quantized formats ",
                 "from one), not ", spec.dtype);
    const ModelFiles m = synthetic_files(spec);
    write_synthetic_model(m.config, m.config.dtype, spec.seed, out_dir);
  });
}

std::vector<std::string> available_devices() {
  std::vector<std::string> d{"cpu"};
  if (cuda_usable()) d.push_back("cuda");
  return d;
}

}  // namespace herd
