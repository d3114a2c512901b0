#include "engine/loaded-model.h"

#include "common/check.h"

namespace herd {

std::unique_ptr<LoadedModel> load_model(const std::string& path, const std::string& device, int n_threads,
                                        float meta_rope_factor, int32_t block_size,
                                        const std::function<int32_t(const ModelConfig&, Backend&)>& n_blocks) {
  HERD_REQUIRE(block_size > 0 && (block_size & (block_size - 1)) == 0, "--block-size must be a power of two, got ",
               block_size);
  auto m = std::make_unique<LoadedModel>();
  m->files = load_model_files(path, meta_rope_factor);
  const ModelConfig& c = m->files.config;
  m->backend = make_backend(device, n_threads);
  m->n_blocks = n_blocks(c, *m->backend);
  m->llama = std::make_unique<LlamaModel>(c, m->files.weights, *m->backend, m->n_blocks, block_size);

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
  i.dtype = std::string(dtype_name(m->files.weights.tok_embd.dtype));
  i.device = m->backend->name();
  return m;
}

void check_token_ids(const std::vector<int32_t>& ids, int64_t n_vocab) {
  for (int32_t id : ids)
    HERD_REQUIRE(id >= 0 && id < n_vocab, "token id ", id, " is outside the vocabulary [0, ", n_vocab, ")");
}

}  // namespace herd
