#include "model/weights.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/check.h"

namespace herd {

namespace fs = std::filesystem;

namespace {

// The name of one canonical tensor in each scheme; {} is the layer index.
struct NameRule {
  const char* hf;
  const char* meta;
};

constexpr NameRule kTokEmbd{"model.embed_tokens.weight", "tok_embeddings.weight"};
constexpr NameRule kOutputNorm{"model.norm.weight", "norm.weight"};
constexpr NameRule kOutput{"lm_head.weight", "output.weight"};

struct LayerRule {
  NameRule name;
  TensorView LayerWeights::*field;
};

const LayerRule kLayerRules[] = {
    {{"input_layernorm.weight", "attention_norm.weight"}, &LayerWeights::attn_norm},
    {{"self_attn.q_proj.weight", "attention.wq.weight"}, &LayerWeights::wq},
    {{"self_attn.k_proj.weight", "attention.wk.weight"}, &LayerWeights::wk},
    {{"self_attn.v_proj.weight", "attention.wv.weight"}, &LayerWeights::wv},
    {{"self_attn.o_proj.weight", "attention.wo.weight"}, &LayerWeights::wo},
    {{"post_attention_layernorm.weight", "ffn_norm.weight"}, &LayerWeights::ffn_norm},
    {{"mlp.gate_proj.weight", "feed_forward.w1.weight"}, &LayerWeights::w_gate},
    {{"mlp.up_proj.weight", "feed_forward.w3.weight"}, &LayerWeights::w_up},
    {{"mlp.down_proj.weight", "feed_forward.w2.weight"}, &LayerWeights::w_down},
};

std::string layer_name(NameScheme s, int64_t layer, const NameRule& r) {
  return s == NameScheme::hf ? str_cat("model.layers.", layer, ".", r.hf) : str_cat("layers.", layer, ".", r.meta);
}

const char* top_name(NameScheme s, const NameRule& r) { return s == NameScheme::hf ? r.hf : r.meta; }

Shape expected_shape(const ModelConfig& c, TensorView LayerWeights::*f) {
  const int64_t q_dim = c.n_head * c.head_dim, kv_dim = c.n_head_kv * c.head_dim;
  if (f == &LayerWeights::attn_norm || f == &LayerWeights::ffn_norm) return {c.n_embd};
  if (f == &LayerWeights::wq) return {q_dim, c.n_embd};
  if (f == &LayerWeights::wk || f == &LayerWeights::wv) return {kv_dim, c.n_embd};
  if (f == &LayerWeights::wo) return {c.n_embd, q_dim};
  if (f == &LayerWeights::w_down) return {c.n_embd, c.n_ff};
  return {c.n_ff, c.n_embd};  // gate, up
}

// Which files to open: the index's weight_map when there is one, else every *.safetensors.
std::vector<std::string> shard_paths(const std::string& dir) {
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::set<std::string> names;
  if (fs::exists(index)) {
    const std::string src = index.string();
    auto j = nlohmann::json::parse(read_text_file(src), nullptr, false);
    HERD_REQUIRE(!j.is_discarded() && j.is_object(), src, ": not valid JSON");
    auto wm = j.find("weight_map");
    HERD_REQUIRE(wm != j.end() && wm->is_object(), src, ": missing \"weight_map\" object");
    for (auto& [tensor, file] : wm->items()) {
      HERD_REQUIRE(file.is_string(), src, ": weight_map[\"", tensor, "\"] is not a file name");
      const std::string f = file.get<std::string>();
      HERD_REQUIRE(f.find('/') == std::string::npos && f != ".." && f != ".", src, ": weight_map[\"", tensor,
                   "\"] names a file outside the model directory: ", f);
      names.insert(f);
    }
  } else {
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") names.insert(e.path().filename().string());
  }
  HERD_REQUIRE(!names.empty(), dir, ": no *.safetensors weights found");
  std::vector<std::string> paths;
  for (const auto& n : names) paths.push_back((fs::path(dir) / n).string());
  return paths;
}

}  // namespace

void permute_interleaved_to_half_split(const uint8_t* src, uint8_t* dst, int64_t n_heads, int64_t head_dim,
                                       int64_t row_bytes) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t j = 0; j < head_dim; ++j) {
      const int64_t from = j < half ? 2 * j : 2 * (j - half) + 1;  // llama31-spec §2.4
      std::memcpy(dst + (h * head_dim + j) * row_bytes, src + (h * head_dim + from) * row_bytes, size_t(row_bytes));
    }
  }
}

HostWeights load_safetensors_weights(const std::string& dir, const ModelConfig& c, NameScheme scheme) {
  HostWeights w;
  std::map<std::string, std::pair<TensorView, std::string>> by_name;  // name -> (view, file)
  for (const auto& path : shard_paths(dir)) {
    HERD_REQUIRE(fs::exists(path), path, ": listed in model.safetensors.index.json but missing");
    w.files.push_back(std::make_unique<SafetensorsFile>(path));
    const SafetensorsFile& f = *w.files.back();
    for (const auto& e : f.header().tensors) {
      auto [it, fresh] = by_name.emplace(e.name, std::make_pair(f.view(e), path));
      HERD_REQUIRE(fresh, path, ": tensor \"", e.name, "\" also appears in ", it->second.second);
    }
  }

  std::vector<std::string> problems;
  std::set<std::string> used;
  auto take = [&](const std::string& name, const Shape& shape) -> TensorView {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      problems.push_back(str_cat("missing tensor \"", name, "\" ", shape_str(shape)));
      return {};
    }
    used.insert(name);
    if (it->second.first.shape != shape)
      problems.push_back(str_cat("tensor \"", name, "\" has shape ", shape_str(it->second.first.shape),
                                 ", config implies ", shape_str(shape)));
    return it->second.first;
  };

  w.tok_embd = take(top_name(scheme, kTokEmbd), {c.n_vocab, c.n_embd});
  w.output_norm = take(top_name(scheme, kOutputNorm), {c.n_embd});
  if (c.tied_embeddings) {
    w.output = w.tok_embd;
    // Some exporters still write the tied copy; it equals the embedding, so it is not unexpected.
    used.insert(top_name(scheme, kOutput));
  } else {
    w.output = take(top_name(scheme, kOutput), {c.n_vocab, c.n_embd});
  }
  w.layers.resize(size_t(c.n_layer));
  for (int64_t l = 0; l < c.n_layer; ++l)
    for (const auto& r : kLayerRules) w.layers[size_t(l)].*r.field = take(layer_name(scheme, l, r.name), expected_shape(c, r.field));

  for (const auto& [name, entry] : by_name) {
    // Old HF exports carry the rotary table as a buffer; herd computes it from the config.
    if (!used.count(name) && !name.ends_with("rotary_emb.inv_freq"))
      problems.push_back(str_cat("unexpected tensor \"", name, "\" in ", entry.second));
  }
  if (!problems.empty()) {
    std::string msg = dir + ": ";
    for (size_t i = 0; i < problems.size() && i < 8; ++i) msg += (i ? "; " : "") + problems[i];
    if (problems.size() > 8) msg += str_cat("; and ", problems.size() - 8, " more");
    fail_input(msg);
  }

  if (c.qk_layout == QkLayout::interleaved) {
    for (auto& layer : w.layers) {
      for (auto [view, n_heads] : {std::pair{&layer.wq, c.n_head}, std::pair{&layer.wk, c.n_head_kv}}) {
        std::vector<uint8_t> buf(view->nbytes());
        permute_interleaved_to_half_split(static_cast<const uint8_t*>(view->data), buf.data(), n_heads, c.head_dim,
                                          int64_t(view->nbytes()) / view->shape[0]);
        view->data = buf.data();
        w.owned.push_back(std::move(buf));
      }
    }
  }
  return w;
}

}  // namespace herd
