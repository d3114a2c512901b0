#include "model/synthetic.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "common/check.h"
#include "model/safetensors.h"

namespace herd {

namespace {

struct Owned {
  std::string name;
  DType dtype;
  Shape shape;
  std::vector<uint8_t> bytes;
};

Owned random_tensor(std::string name, Shape shape, DType dtype, float mean, float stddev, std::mt19937_64& rng) {
  std::normal_distribution<float> dist(mean, stddev);
  const int64_t n = shape_numel(shape);
  Owned t{std::move(name), dtype, std::move(shape), std::vector<uint8_t>(size_t(n) * dtype_size(dtype))};
  for (int64_t i = 0; i < n; ++i) {
    const float v = dist(rng);
    switch (dtype) {
      case DType::f32: reinterpret_cast<float*>(t.bytes.data())[i] = v; break;
      case DType::bf16: reinterpret_cast<uint16_t*>(t.bytes.data())[i] = f32_to_bf16(v); break;
      case DType::f16: reinterpret_cast<uint16_t*>(t.bytes.data())[i] = f32_to_f16(v); break;
      case DType::i32: HERD_CHECK(false, "i32 weights"); break;
    }
  }
  return t;
}

}  // namespace

void write_synthetic_model(const ModelConfig& c, DType dtype, uint64_t seed, const std::string& out_dir) {
  validate_config(c, out_dir + "/config.json");
  std::filesystem::create_directories(out_dir);
  std::mt19937_64 rng(seed);
  const int64_t q_dim = c.n_head * c.head_dim, kv_dim = c.n_head_kv * c.head_dim;
  const float w_std = 0.02f, norm_std = 0.1f;

  std::vector<Owned> ts;
  ts.push_back(random_tensor("model.embed_tokens.weight", {c.n_vocab, c.n_embd}, dtype, 0.f, 1.0f, rng));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = str_cat("model.layers.", l, ".");
    ts.push_back(random_tensor(p + "input_layernorm.weight", {c.n_embd}, dtype, 1.f, norm_std, rng));
    ts.push_back(random_tensor(p + "self_attn.q_proj.weight", {q_dim, c.n_embd}, dtype, 0.f, w_std, rng));
    ts.push_back(random_tensor(p + "self_attn.k_proj.weight", {kv_dim, c.n_embd}, dtype, 0.f, w_std, rng));
    ts.push_back(random_tensor(p + "self_attn.v_proj.weight", {kv_dim, c.n_embd}, dtype, 0.f, w_std, rng));
    ts.push_back(random_tensor(p + "self_attn.o_proj.weight", {c.n_embd, q_dim}, dtype, 0.f, w_std, rng));
    ts.push_back(random_tensor(p + "post_attention_layernorm.weight", {c.n_embd}, dtype, 1.f, norm_std, rng));
    ts.push_back(random_tensor(p + "mlp.gate_proj.weight", {c.n_ff, c.n_embd}, dtype, 0.f, w_std, rng));
    ts.push_back(random_tensor(p + "mlp.up_proj.weight", {c.n_ff, c.n_embd}, dtype, 0.f, w_std, rng));
    ts.push_back(random_tensor(p + "mlp.down_proj.weight", {c.n_embd, c.n_ff}, dtype, 0.f, w_std, rng));
  }
  ts.push_back(random_tensor("model.norm.weight", {c.n_embd}, dtype, 1.f, norm_std, rng));
  if (!c.tied_embeddings)
    ts.push_back(random_tensor("lm_head.weight", {c.n_vocab, c.n_embd}, dtype, 0.f, w_std, rng));

  std::vector<NamedTensor> views;
  for (const auto& t : ts) views.push_back({t.name, TensorView{t.dtype, t.shape, t.bytes.data()}});
  write_safetensors(out_dir + "/model.safetensors", views);

  ModelConfig written = c;
  written.dtype = dtype;
  std::ofstream f(out_dir + "/config.json", std::ios::trunc);
  HERD_REQUIRE(f.good(), out_dir, "/config.json: cannot create");
  f << to_hf_config_json(written);
}

}  // namespace herd
