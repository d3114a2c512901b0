#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "common/check.h"
#include "common/json-limits.h"
#include "common/read-file.h"

namespace herd {

using nlohmann::json;

namespace {

// Gathers every problem in a file so the user fixes them in one go.
class Problems {
 public:
  explicit Problems(std::string source) : source_(std::move(source)) {}
  void add(std::string p) { list_.push_back(std::move(p)); }
  void raise_if_any() const {
    if (list_.empty()) return;
    std::string msg = source_ + ": ";
    for (size_t i = 0; i < list_.size(); ++i) msg += (i ? "; " : "") + list_[i];
    fail_input(msg);
  }

 private:
  std::string source_;
  std::vector<std::string> list_;
};

json parse_json(const std::string& text, const std::string& source) {
  std::optional<json> j = parse_json_limited(text, source);
  HERD_REQUIRE(j, source, ": not valid JSON");
  HERD_REQUIRE(j->is_object(), source, ": expected a JSON object at the top level");
  return std::move(*j);
}

// Typed reads of one JSON object's fields. A missing (or null) field takes the fallback, or is a
// problem when there is none; a field of the wrong type is a problem naming it and its type.
// `scope` prefixes the names of a nested object's fields ("rope_scaling.").
class Fields {
 public:
  Fields(const json& obj, Problems& p, std::string scope = "") : obj_(obj), p_(p), scope_(std::move(scope)) {}

  int64_t integer(const char* key, std::optional<int64_t> fallback = {}) const {
    const json* v = find(key, "an integer", fallback.has_value());
    if (!v) return fallback.value_or(0);
    if (!v->is_number_integer() || (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX)))
      return wrong(key, "an integer", *v), 0;
    return v->get<int64_t>();
  }

  // A float: a JSON number that stays finite as a float (1e40 does not).
  float number(const char* key, std::optional<float> fallback = {}) const {
    const json* v = find(key, "a number", fallback.has_value());
    if (!v) return fallback.value_or(0.f);
    if (!v->is_number()) return wrong(key, "a number", *v), 0.f;
    const float f = float(v->get<double>());
    if (!std::isfinite(f)) return wrong(key, "a finite number within float range", *v), 0.f;
    return f;
  }

  bool boolean(const char* key, bool fallback) const {
    const json* v = find(key, "a boolean", true);
    if (!v) return fallback;
    if (!v->is_boolean()) return wrong(key, "a boolean (true or false)", *v), fallback;
    return v->get<bool>();
  }

  std::string string(const char* key, const std::string& fallback) const {
    const json* v = find(key, "a string", true);
    if (!v) return fallback;
    if (!v->is_string()) return wrong(key, "a string", *v), fallback;
    return v->get<std::string>();
  }

  // nullptr when absent or null; a problem when not an object.
  const json* object(const char* key) const {
    const json* v = find(key, "an object", true);
    if (v && !v->is_object()) return wrong(key, "a JSON object", *v), nullptr;
    return v;
  }

  // bos_token_id / eos_token_id: a token id or a list of them.
  std::vector<int32_t> ids(const char* key) const {
    const json* v = find(key, "a token id", true);
    if (!v) return {};
    std::vector<int32_t> out;
    for (const json& id : v->is_array() ? *v : json::array({*v})) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX ||
          (id.is_number_unsigned() && id.get<uint64_t>() > uint64_t(INT32_MAX))) {
        wrong(key, "a token id (an integer in [0, 2^31)) or a list of them", *v);
        return {};
      }
      out.push_back(int32_t(id.get<int64_t>()));
    }
    return out;
  }

  std::string name(const char* key) const { return scope_ + key; }

 private:
  const json* find(const char* key, const char* type, bool optional) const {
    const auto it = obj_.find(key);
    if (it != obj_.end() && !it->is_null()) return &*it;
    if (!optional) p_.add(str_cat("missing field \"", name(key), "\" (expected ", type, ")"));
    return nullptr;
  }
  void wrong(const char* key, const char* type, const json& v) const {
    std::string got = v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (got.size() > 40) got = got.substr(0, 40) + "...";
    p_.add(str_cat("field \"", name(key), "\" must be ", type, ", got ", got));
  }

  const json& obj_;
  Problems& p_;
  std::string scope_;
};

void read_llama3_scaling(const json& obj, ModelConfig& c, Problems& p, const std::string& where) {
  const Fields f(obj, p, where + ".");
  const std::string type = f.string(obj.contains("rope_type") ? "rope_type" : "type", "");
  if (type == "default" || type.empty()) return;
  if (type != "llama3") {
    p.add(str_cat(where, ".rope_type is \"", type, "\"; herd supports \"llama3\" and \"default\""));
    return;
  }
  RopeScaling s;
  s.factor = f.number("factor");
  s.low_freq_factor = f.number("low_freq_factor");
  s.high_freq_factor = f.number("high_freq_factor");
  s.original_max_position = f.integer("original_max_position_embeddings");
  c.rope_scaling = s;
}

std::optional<DType> dtype_from_torch_name(const std::string& s) {
  if (s == "bfloat16") return DType::bf16;
  if (s == "float16") return DType::f16;
  if (s == "float32") return DType::f32;
  return std::nullopt;
}

}  // namespace

std::string read_text_file(const std::string& path) { return read_file(path, kMaxJsonFileBytes, "a JSON config"); }

ModelConfig parse_hf_config(const std::string& json_text, const std::string& source) {
  const json j = parse_json(json_text, source);
  Problems p(source);

  bool is_llama = false;
  if (auto it = j.find("architectures"); it != j.end() && it->is_array()) {
    for (const auto& a : *it) is_llama |= a.is_string() && a.get<std::string>() == "LlamaForCausalLM";
  } else if (auto mt = j.find("model_type"); mt != j.end() && mt->is_string()) {
    is_llama = *mt == "llama";
  }
  if (!is_llama) {
    const std::string arch = j.contains("architectures") ? j["architectures"].dump()
                             : j.contains("model_type")  ? j["model_type"].dump()
                                                         : "none given";
    fail_input(source, ": unsupported architecture ", arch, "; herd runs LlamaForCausalLM");
  }

  const Fields f(j, p);
  ModelConfig c;
  c.n_vocab = f.integer("vocab_size");
  c.n_embd = f.integer("hidden_size");
  c.n_ff = f.integer("intermediate_size");
  c.n_layer = f.integer("num_hidden_layers");
  c.n_head = f.integer("num_attention_heads");
  c.n_head_kv = f.integer("num_key_value_heads", c.n_head);
  c.head_dim = f.integer("head_dim", c.n_head > 0 ? c.n_embd / c.n_head : 0);
  c.n_ctx_train = f.integer("max_position_embeddings");
  c.norm_eps = f.number("rms_norm_eps");
  c.tied_embeddings = f.boolean("tie_word_embeddings", false);
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    if (f.boolean(key, false)) p.add(str_cat("\"", key, "\" is true; Llama 3.1 has no biases"));
  }
  if (auto act = j.find("hidden_act"); act != j.end() && *act != "silu")
    p.add(str_cat("\"hidden_act\" is ", act->dump(), ", expected \"silu\""));

  // transformers 5 folds theta and scaling into rope_parameters; transformers 4 keeps them
  // at the top level as rope_theta and rope_scaling.
  if (const json* rp = f.object("rope_parameters")) {
    c.rope_theta = Fields(*rp, p, "rope_parameters.").number("rope_theta");
    read_llama3_scaling(*rp, c, p, "rope_parameters");
  } else {
    c.rope_theta = f.number("rope_theta", 10000.0f);
    if (const json* rs = f.object("rope_scaling")) read_llama3_scaling(*rs, c, p, "rope_scaling");
  }

  const std::string dtype_s = f.string("dtype", f.string("torch_dtype", "bfloat16"));
  if (auto d = dtype_from_torch_name(dtype_s)) c.dtype = *d;
  else p.add(str_cat("dtype \"", dtype_s, "\" is not one of bfloat16, float16, float32"));

  const auto bos = f.ids("bos_token_id");
  c.bos_id = bos.empty() ? -1 : bos[0];
  c.eos_ids = f.ids("eos_token_id");
  p.raise_if_any();
  validate_config(c, source);
  return c;
}

ModelConfig parse_meta_params(const std::string& json_text, const std::string& source,
                              float rope_factor) {
  const json j = parse_json(json_text, source);
  Problems p(source);
  const Fields f(j, p);
  ModelConfig c;
  c.n_embd = f.integer("dim");
  c.n_layer = f.integer("n_layers");
  c.n_head = f.integer("n_heads");
  c.n_head_kv = f.integer("n_kv_heads", c.n_head);
  c.n_vocab = f.integer("vocab_size");
  c.norm_eps = f.number("norm_eps");
  c.rope_theta = f.number("rope_theta", 500000.0f);
  const int64_t multiple_of = f.integer("multiple_of");
  const float ffn_mult = f.number("ffn_dim_multiplier", 1.0f);
  const bool scaled_rope = f.boolean("use_scaled_rope", false);
  // Bounds the FFN width computed below before it is converted to an integer.
  if (!(ffn_mult > 0.f && ffn_mult <= 64.f))
    p.add(str_cat("field \"ffn_dim_multiplier\" must lie in (0, 64], got ", ffn_mult));
  if (c.n_embd > (int64_t(1) << 17))
    p.add(str_cat("dim of ", c.n_embd, " is implausibly large (at most ", int64_t(1) << 17, ")"));
  p.raise_if_any();

  // llama-models FeedForward: int(2*4*dim/3), times the multiplier, rounded up to multiple_of.
  int64_t hidden = int64_t(2 * (4 * c.n_embd) / 3);
  hidden = int64_t(ffn_mult * float(hidden));
  if (multiple_of > 0) hidden = multiple_of * ((hidden + multiple_of - 1) / multiple_of);
  c.n_ff = hidden;
  c.head_dim = c.n_head > 0 ? c.n_embd / c.n_head : 0;
  c.n_ctx_train = 131072;
  if (scaled_rope) {
    RopeScaling s;
    s.factor = rope_factor;
    c.rope_scaling = s;
  }
  c.tied_embeddings = false;
  if (c.n_vocab == 128256) {  // params.json names no special ids; these are Llama 3's
    c.bos_id = 128000;
    c.eos_ids = {128001, 128008, 128009};
  }
  c.qk_layout = QkLayout::interleaved;
  validate_config(c, source);
  return c;
}

GenerationDefaults parse_generation_config(const std::string& json_text, const std::string& source,
                                           std::vector<int32_t>* eos_ids) {
  const json j = parse_json(json_text, source);
  Problems p(source);
  const Fields f(j, p);
  GenerationDefaults g;
  // The ranges the sampler accepts, checked here so that the error names this file.
  if (j.contains("do_sample")) g.do_sample = f.boolean("do_sample", false);
  if (j.contains("temperature")) {
    g.temperature = f.number("temperature");
    if (!(*g.temperature >= 0.f)) p.add(str_cat("field \"temperature\" must be >= 0, got ", *g.temperature));
  }
  if (j.contains("top_p")) {
    g.top_p = f.number("top_p");
    if (!(*g.top_p > 0.f && *g.top_p <= 1.f)) p.add(str_cat("field \"top_p\" must lie in (0, 1], got ", *g.top_p));
  }
  if (j.contains("top_k")) {
    const int64_t k = f.integer("top_k");
    if (k < 0 || k > INT32_MAX) p.add(str_cat("field \"top_k\" must lie in [0, 2^31) (0: off), got ", k));
    g.top_k = int(std::clamp<int64_t>(k, 0, INT32_MAX));
  }
  auto eos = f.ids("eos_token_id");
  p.raise_if_any();
  if (!eos.empty() && eos_ids) *eos_ids = eos;
  return g;
}

void validate_config(const ModelConfig& c, const std::string& source) {
  Problems p(source);
  // The upper bounds are far above any Llama (405B: 16384 wide, 126 layers, 53248 FFN) and stop a
  // corrupt file from sizing allocations before its tensors are checked.
  auto in_range = [&](const char* name, int64_t v, int64_t max) {
    if (v <= 0) p.add(str_cat(name, " must be positive, got ", v));
    else if (v > max) p.add(str_cat(name, " of ", v, " is implausibly large (at most ", max, ")"));
  };
  in_range("vocab_size", c.n_vocab, int64_t(1) << 24);
  in_range("hidden_size", c.n_embd, int64_t(1) << 17);
  in_range("intermediate_size", c.n_ff, int64_t(1) << 20);
  in_range("num_hidden_layers", c.n_layer, 4096);
  in_range("num_attention_heads", c.n_head, 4096);
  in_range("num_key_value_heads", c.n_head_kv, 4096);
  in_range("head_dim", c.head_dim, 4096);
  in_range("max_position_embeddings", c.n_ctx_train, int64_t(1) << 26);
  if (c.n_head > 0 && c.n_head_kv > 0 && c.n_head % c.n_head_kv != 0)
    p.add(str_cat("num_attention_heads (", c.n_head, ") must be a multiple of num_key_value_heads (",
                  c.n_head_kv, ")"));
  if (c.head_dim > 0 && c.head_dim % 2 != 0)
    p.add(str_cat("head_dim must be even for RoPE, got ", c.head_dim));
  // eps is added to a mean of squares: above 1 it swamps the activations it normalises.
  if (!(c.norm_eps > 0.f && c.norm_eps <= 1.f))
    p.add(str_cat("rms_norm_eps must lie in (0, 1], got ", c.norm_eps));
  if (!(c.rope_theta > 0.f && std::isfinite(c.rope_theta)))
    p.add(str_cat("rope_theta must be positive and finite, got ", c.rope_theta));
  if (c.rope_scaling) {
    const RopeScaling& s = *c.rope_scaling;
    if (!(s.factor >= 1.f && std::isfinite(s.factor)))
      p.add(str_cat("rope factor must be >= 1 and finite, got ", s.factor));
    if (!(s.high_freq_factor > s.low_freq_factor && s.low_freq_factor > 0.f && std::isfinite(s.high_freq_factor)))
      p.add(str_cat("rope high_freq_factor (", s.high_freq_factor, ") must exceed low_freq_factor (",
                    s.low_freq_factor, ") > 0, both finite"));
    if (s.original_max_position <= 0 || s.original_max_position > (int64_t(1) << 26))
      p.add(str_cat("original_max_position_embeddings must lie in [1, 2^26], got ", s.original_max_position));
  }
  for (int32_t id : c.eos_ids)
    if (id < 0 || id >= c.n_vocab) p.add(str_cat("eos_token_id ", id, " outside [0, ", c.n_vocab, ")"));
  if (c.bos_id < -1 || c.bos_id >= c.n_vocab)
    p.add(str_cat("bos_token_id ", c.bos_id, " outside [0, ", c.n_vocab, ")"));
  p.raise_if_any();
}

std::string to_hf_config_json(const ModelConfig& c) {
  json j = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"vocab_size", c.n_vocab},
      {"hidden_size", c.n_embd},
      {"intermediate_size", c.n_ff},
      {"num_hidden_layers", c.n_layer},
      {"num_attention_heads", c.n_head},
      {"num_key_value_heads", c.n_head_kv},
      {"head_dim", c.head_dim},
      {"max_position_embeddings", c.n_ctx_train},
      {"rms_norm_eps", c.norm_eps},
      {"rope_theta", c.rope_theta},
      {"tie_word_embeddings", c.tied_embeddings},
      {"hidden_act", "silu"},
      {"torch_dtype", c.dtype == DType::bf16 ? "bfloat16" : c.dtype == DType::f16 ? "float16" : "float32"},
  };
  if (c.rope_scaling) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_scaling->factor},
                         {"low_freq_factor", c.rope_scaling->low_freq_factor},
                         {"high_freq_factor", c.rope_scaling->high_freq_factor},
                         {"original_max_position_embeddings", c.rope_scaling->original_max_position}};
  }
  if (c.bos_id >= 0) j["bos_token_id"] = c.bos_id;
  if (!c.eos_ids.empty()) j["eos_token_id"] = c.eos_ids;
  return j.dump(2) + "\n";
}

}  // namespace herd
