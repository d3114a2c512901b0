#include "model/load-gguf.h"

#include <algorithm>
#include <cstdint>

#include "common/check.h"

namespace herd {
namespace {

// The rope_freqs tensor, or the older scaling keys, as per-frequency divisors.
void read_rope_scaling(const GgufFile& f, ModelConfig& c) {
  const std::string& src = f.source();
  const std::string type(f.get_string("llama.rope.scaling.type").value_or("none"));
  if (const GgufTensorInfo* t = f.tensor("rope_freqs.weight")) {
    HERD_REQUIRE(t->dtype == DType::f32 && t->shape == Shape{c.head_dim / 2}, src, ": tensor \"rope_freqs.weight\" is ",
                 dtype_name(t->dtype), " ", shape_str(t->shape), ", expected F32 [", c.head_dim / 2, "]");
    const auto* p = static_cast<const float*>(t->data);
    c.rope_freq_factors.assign(p, p + c.head_dim / 2);
    for (float v : c.rope_freq_factors)
      HERD_REQUIRE(v > 0.0f, src, ": tensor \"rope_freqs.weight\" holds a factor ", v, " that is not positive");
  } else if (type == "linear") {
    const double factor = f.get_float("llama.rope.scaling.factor").value_or(1.0);
    HERD_REQUIRE(factor > 0.0, src, ": key \"llama.rope.scaling.factor\" must be positive, is ", factor);
    c.rope_freq_factors.assign(size_t(c.head_dim / 2), float(factor));
  } else {
    HERD_REQUIRE(type == "none", src, ": key \"llama.rope.scaling.type\" is \"", type,
                 "\"; herd supports none, linear and Llama 3.1's rope_freqs factors");
  }
}

// End-of-generation ids: the file's eos, eot and eom tokens (Llama 3.1 Instruct has all three).
std::vector<int32_t> stop_ids(const GgufFile& f) {
  std::vector<int32_t> ids;
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    if (auto id = f.get_int(key); id && std::find(ids.begin(), ids.end(), *id) == ids.end()) {
      HERD_REQUIRE(*id >= 0 && *id <= INT32_MAX, f.source(), ": key \"", key, "\" is ", *id, ", not a token id");
      ids.push_back(int32_t(*id));
    }
  return ids;
}

ModelConfig read_config(const GgufFile& f) {
  const std::string& src = f.source();
  const std::string arch(f.get_string("general.architecture").value_or(""));
  HERD_REQUIRE(!arch.empty(), src, ": missing key \"general.architecture\"");
  HERD_REQUIRE(arch == "llama", src, ": architecture \"", arch, "\" is not supported (herd runs \"llama\" models)");
  const GgufTensorInfo* embd = f.tensor("token_embd.weight");
  HERD_REQUIRE(embd && embd->shape.size() == 2, src, ": missing the 2-D tensor \"token_embd.weight\"");

  ModelConfig c;
  c.n_embd = f.require_int("llama.embedding_length");
  c.n_layer = f.require_int("llama.block_count");
  c.n_ff = f.require_int("llama.feed_forward_length");
  c.n_head = f.require_int("llama.attention.head_count");
  c.n_head_kv = f.get_int("llama.attention.head_count_kv").value_or(c.n_head);
  c.head_dim = f.get_int("llama.attention.key_length").value_or(c.n_head > 0 ? c.n_embd / c.n_head : 0);
  const int64_t v_dim = f.get_int("llama.attention.value_length").value_or(c.head_dim);
  HERD_REQUIRE(v_dim == c.head_dim, src, ": key \"llama.attention.value_length\" (", v_dim,
               ") differs from the key length ", c.head_dim, "; not a Llama model");
  const int64_t rope_dim = f.get_int("llama.rope.dimension_count").value_or(c.head_dim);
  HERD_REQUIRE(rope_dim == c.head_dim, src, ": key \"llama.rope.dimension_count\" is ", rope_dim,
               "; herd rotates whole heads of ", c.head_dim);
  const auto eps = f.get_float("llama.attention.layer_norm_rms_epsilon");
  HERD_REQUIRE(eps, src, ": missing key \"llama.attention.layer_norm_rms_epsilon\"");
  c.norm_eps = float(*eps);
  c.rope_theta = float(f.get_float("llama.rope.freq_base").value_or(10000.0));
  c.n_ctx_train = f.get_int("llama.context_length").value_or(2048);
  c.n_vocab = embd->shape[0];
  if (auto v = f.get_int("llama.vocab_size"))
    HERD_REQUIRE(*v == c.n_vocab, src, ": key \"llama.vocab_size\" is ", *v, " but \"token_embd.weight\" has ", c.n_vocab,
                 " rows");
  c.tied_embeddings = f.tensor("output.weight") == nullptr;
  c.dtype = embd->dtype;
  const int64_t bos = f.get_int("tokenizer.ggml.bos_token_id").value_or(-1);
  HERD_REQUIRE(bos >= -1 && bos < c.n_vocab, src, ": key \"tokenizer.ggml.bos_token_id\" is ", bos,
               ", outside the vocabulary of ", c.n_vocab);
  c.bos_id = int32_t(bos);
  c.eos_ids = stop_ids(f);
  c.qk_layout = QkLayout::interleaved;  // llama.cpp's converter permutes HF rows into Meta's order
  validate_config(c, src);
  read_rope_scaling(f, c);  // after validation: head_dim sizes what it reads
  return c;
}

// llama.cpp writes the model's sampling defaults under general.sampling.* when it knows them.
GenerationDefaults read_generation(const GgufFile& f) {
  GenerationDefaults g;
  if (auto t = f.get_float("general.sampling.temp")) g.temperature = float(*t);
  if (auto p = f.get_float("general.sampling.top_p")) g.top_p = float(*p);
  if (auto k = f.get_int("general.sampling.top_k")) g.top_k = int(*k);
  if (g.temperature || g.top_p || g.top_k) g.do_sample = true;
  return g;
}

}  // namespace

ModelFiles load_gguf_model(const std::string& path, const std::optional<Shard>& only_rank) {
  ModelFiles m;
  m.dir = path;
  auto file = std::make_unique<GgufFile>(path);
  m.config = read_config(*file);
  m.generation = read_generation(*file);
  TensorsByName by_name;
  for (const GgufTensorInfo& t : file->tensors())
    if (t.name != "rope_freqs.weight") by_name.emplace(t.name, std::make_pair(file->view(t), path));
  assemble_weights(by_name, m.config, NameScheme::gguf, path, m.weights, only_rank);
  m.weights.gguf = std::move(file);
  return m;
}

}  // namespace herd
