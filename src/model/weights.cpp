#include "model/weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "common/check.h"
#include "common/json-limits.h"
#include "common/quant.h"
#include "model/checkpoint-quant.h"

namespace herd {

namespace fs = std::filesystem;

namespace {

// The name of one canonical tensor in each scheme (a layer tensor's name within its layer).
struct NameRule {
  const char* hf;
  const char* meta;
  const char* gguf;
};

constexpr NameRule kTokEmbd{"model.embed_tokens.weight", "tok_embeddings.weight", "token_embd.weight"};
constexpr NameRule kOutputNorm{"model.norm.weight", "norm.weight", "output_norm.weight"};
constexpr NameRule kOutput{"lm_head.weight", "output.weight", "output.weight"};

struct LayerRule {
  NameRule name;
  TensorView LayerWeights::*field;
};

const LayerRule kLayerRules[] = {
    {{"input_layernorm.weight", "attention_norm.weight", "attn_norm.weight"}, &LayerWeights::attn_norm},
    {{"self_attn.q_proj.weight", "attention.wq.weight", "attn_q.weight"}, &LayerWeights::wq},
    {{"self_attn.k_proj.weight", "attention.wk.weight", "attn_k.weight"}, &LayerWeights::wk},
    {{"self_attn.v_proj.weight", "attention.wv.weight", "attn_v.weight"}, &LayerWeights::wv},
    {{"self_attn.o_proj.weight", "attention.wo.weight", "attn_output.weight"}, &LayerWeights::wo},
    {{"post_attention_layernorm.weight", "ffn_norm.weight", "ffn_norm.weight"}, &LayerWeights::ffn_norm},
    {{"mlp.gate_proj.weight", "feed_forward.w1.weight", "ffn_gate.weight"}, &LayerWeights::w_gate},
    {{"mlp.up_proj.weight", "feed_forward.w3.weight", "ffn_up.weight"}, &LayerWeights::w_up},
    {{"mlp.down_proj.weight", "feed_forward.w2.weight", "ffn_down.weight"}, &LayerWeights::w_down},
};

const char* top_name(NameScheme s, const NameRule& r) {
  return s == NameScheme::hf ? r.hf : s == NameScheme::meta ? r.meta : r.gguf;
}

std::string layer_name(NameScheme s, int64_t layer, const NameRule& r) {
  static constexpr const char* prefix[] = {"model.layers.", "layers.", "blk."};
  return str_cat(prefix[int(s)], layer, ".", top_name(s, r));
}

Shape expected_shape(const ModelConfig& c, TensorView LayerWeights::*f) {
  const int64_t q_dim = c.n_head * c.head_dim, kv_dim = c.n_head_kv * c.head_dim;
  if (f == &LayerWeights::attn_norm || f == &LayerWeights::ffn_norm) return {c.n_embd};
  if (f == &LayerWeights::wq) return {q_dim, c.n_embd};
  if (f == &LayerWeights::wk || f == &LayerWeights::wv) return {kv_dim, c.n_embd};
  if (f == &LayerWeights::wo) return {c.n_embd, q_dim};
  if (f == &LayerWeights::w_down) return {c.n_embd, c.n_ff};
  return {c.n_ff, c.n_embd};  // gate, up
}

// The first NaN or infinity of a plain-typed tensor as (index, value); quantized ones are not read.
std::optional<std::pair<int64_t, float>> first_non_finite(const TensorView& t) {
  for (int64_t i = 0; i < t.numel(); ++i) {
    float v = 0.f;
    switch (t.dtype) {
      case DType::f32: std::memcpy(&v, static_cast<const float*>(t.data) + i, 4); break;
      case DType::f16: v = f16_to_f32(static_cast<const uint16_t*>(t.data)[i]); break;
      case DType::bf16: v = bf16_to_f32(static_cast<const uint16_t*>(t.data)[i]); break;
      default: return std::nullopt;
    }
    if (!std::isfinite(v)) return std::make_pair(i, v);
  }
  return std::nullopt;
}

// Which files to open: the index's weight_map when there is one, else every *.safetensors.
std::vector<std::string> shard_paths(const std::string& dir) {
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::set<std::string> names;
  std::error_code ec;
  if (fs::symlink_status(index, ec).type() != fs::file_type::not_found) {
    const std::string src = index.string();
    const std::optional<nlohmann::json> parsed = parse_json_limited(read_text_file(src), src);
    HERD_REQUIRE(parsed && parsed->is_object(), src, ": not valid JSON");
    const nlohmann::json& j = *parsed;
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
    fs::directory_iterator it(dir, ec);
    for (; !ec && it != fs::directory_iterator(); it.increment(ec))
      if (it->path().extension() == ".safetensors") names.insert(it->path().filename().string());
    HERD_REQUIRE(!ec, dir, ": cannot list the directory: ", ec.message());
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
      const int64_t from = j < half ? 2 * j : 2 * (j - half) + 1;  // docs/llama31.md, "Half-split and interleaved q/k"
      std::memcpy(dst + (h * head_dim + j) * row_bytes, src + (h * head_dim + from) * row_bytes, size_t(row_bytes));
    }
  }
}

HostWeights load_safetensors_weights(const std::string& dir, const ModelConfig& c, NameScheme scheme,
                                     const std::optional<Shard>& only_rank) {
  HostWeights w;
  const std::optional<CheckpointQuant> quant =
      scheme == NameScheme::hf ? read_checkpoint_quant((fs::path(dir) / "config.json").string()) : std::nullopt;
  TensorsByName by_name;
  for (const auto& path : shard_paths(dir)) {
    std::error_code ec;
    HERD_REQUIRE(fs::symlink_status(path, ec).type() != fs::file_type::not_found, path,
                 ": listed in model.safetensors.index.json but missing");
    w.files.push_back(std::make_unique<SafetensorsFile>(path));
    const SafetensorsFile& f = *w.files.back();
    for (const auto& e : f.header().tensors) {
      auto [it, fresh] = by_name.emplace(e.name, std::make_pair(f.view(e), path));
      HERD_REQUIRE(fresh, path, ": tensor \"", e.name, "\" also appears in ", it->second.second);
    }
  }
  // Old HF exports carry the rotary table as a buffer; herd computes it from the config.
  std::erase_if(by_name, [](const auto& kv) { return kv.first.ends_with("rotary_emb.inv_freq"); });
  if (quant) convert_quantized_checkpoint(*quant, by_name, w);
  assemble_weights(by_name, c, scheme, dir, w, only_rank);
  return w;
}

void assemble_weights(const TensorsByName& by_name, const ModelConfig& c, NameScheme scheme,
                      const std::string& source, HostWeights& w, const std::optional<Shard>& only_rank) {
  std::vector<std::string> problems;
  std::set<std::string> used;
  auto take = [&](const std::string& name, const Shape& shape) -> TensorView {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      problems.push_back(str_cat("missing tensor \"", name, "\" ", shape_str(shape)));
      return {};
    }
    used.insert(name);
    const DType t = it->second.first.dtype;
    if (t == DType::i32 || t == DType::f8_e4m3 || (shape.size() == 1 && is_quantized(t)))
      problems.push_back(str_cat("tensor \"", name, "\" is ", dtype_name(t), ", which is not a type of ",
                                 shape.size() == 1 ? "norm weights" : "weights",
                                 t == DType::f8_e4m3 ? " (an FP8 checkpoint without its quantization_config?)" : ""));
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

  // The FP8 KV cache scales of a checkpoint quantized with a KV cache scheme (compressed-tensors'
  // kv_cache_scheme, checked with the rest of quantization_config): one scalar each.
  if (scheme == NameScheme::hf)
    for (int64_t l = 0; l < c.n_layer; ++l)
      for (auto [suffix, field] : {std::pair{"k_scale", &LayerWeights::k_scale}, std::pair{"v_scale", &LayerWeights::v_scale}}) {
        const std::string name = str_cat("model.layers.", l, ".self_attn.", suffix);
        const auto it = by_name.find(name);
        if (it == by_name.end()) continue;
        used.insert(name);
        const TensorView& t = it->second.first;
        const bool scalar = (t.dtype == DType::f32 || t.dtype == DType::f16 || t.dtype == DType::bf16) && t.numel() == 1;
        float v = NAN;
        if (scalar) dequantize_row(t.dtype, t.data, &v, 1);
        if (v > 0.f && std::isfinite(v))
          w.layers[size_t(l)].*field = v;
        else
          problems.push_back(str_cat("tensor \"", name, "\" must be one positive finite float (an FP8 KV cache scale), not ",
                                     scalar ? str_cat(v) : str_cat(dtype_name(t.dtype), " ", shape_str(t.shape))));
      }

  for (const auto& [name, entry] : by_name)
    if (!used.count(name)) problems.push_back(str_cat("unexpected tensor \"", name, "\" in ", entry.second));
  if (!problems.empty()) {
    std::string msg = source + ": ";
    for (size_t i = 0; i < problems.size() && i < 8; ++i) msg += (i ? "; " : "") + problems[i];
    if (problems.size() > 8) msg += str_cat("; and ", problems.size() - 8, " more");
    fail_input(msg);
  }

  // An RMSNorm weight scales every activation, so one NaN or infinity there turns every logit
  // into NaN. The norms are small (n_embd values each) and checked whole; the matrices are not.
  std::vector<std::string> norms{top_name(scheme, kOutputNorm)};
  for (int64_t l = 0; l < c.n_layer; ++l)
    for (const auto& r : kLayerRules)
      if (r.field == &LayerWeights::attn_norm || r.field == &LayerWeights::ffn_norm)
        norms.push_back(layer_name(scheme, l, r.name));
  for (const std::string& name : norms) {
    const auto& [view, file] = by_name.at(name);
    if (const auto bad = first_non_finite(view))
      fail_input(file, ": tensor \"", name, "\" holds ", bad->second, " at index ", bad->first,
                 "; norm weights must be finite (a corrupt file?)");
  }

  if (c.qk_layout == QkLayout::interleaved) {
    // Heads [first, first + count) of wq and of wk are permuted: all of them, or one rank's.
    std::pair<int64_t, int64_t> q_heads{0, c.n_head}, kv_heads{0, c.n_head_kv};
    if (only_rank && only_rank->size > 1) {
      check_tensor_parallel(c, only_rank->size);
      const ShardDims d = shard_dims(c, *only_rank);
      q_heads = {d.head0, d.n_head};
      kv_heads = {d.head_kv0, d.n_head_kv};
    }
    const bool whole = q_heads.second == c.n_head && kv_heads.second == c.n_head_kv;
    for (auto& layer : w.layers) {
      for (auto [view, heads] : {std::pair{&layer.wq, q_heads}, std::pair{&layer.wk, kv_heads}}) {
        const size_t row_bytes = view->nbytes() / size_t(view->shape[0]);
        const size_t head_bytes = row_bytes * size_t(c.head_dim), skip = size_t(heads.first) * head_bytes;
        uint8_t* buf = whole ? w.owned.emplace_back(view->nbytes()).data()
                             : w.rank_slices.emplace_back(std::make_unique<ZeroPages>(view->nbytes()))->data();
        permute_interleaved_to_half_split(static_cast<const uint8_t*>(view->data) + skip, buf + skip, heads.second,
                                          c.head_dim, int64_t(row_bytes));
        view->data = buf;
      }
    }
  }
}

}  // namespace herd
