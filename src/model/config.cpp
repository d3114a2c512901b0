#include "model/config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/check.h"

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
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  HERD_REQUIRE(!j.is_discarded(), source, ": not valid JSON");
  HERD_REQUIRE(j.is_object(), source, ": expected a JSON object at the top level");
  return j;
}

// Reads an integer field; records a problem when it is required and missing or mistyped.
int64_t get_int(const json& j, const char* key, Problems& p, std::optional<int64_t> fallback = {}) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback) return *fallback;
    p.add(str_cat("missing field \"", key, "\" (expected an integer)"));
    return 0;
  }
  if (!it->is_number_integer()) {
    p.add(str_cat("field \"", key, "\" must be an integer, got ", it->dump()));
    return 0;
  }
  return it->get<int64_t>();
}

float get_float(const json& j, const char* key, Problems& p, std::optional<float> fallback = {}) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback) return *fallback;
    p.add(str_cat("missing field \"", key, "\" (expected a number)"));
    return 0.f;
  }
  if (!it->is_number()) {
    p.add(str_cat("field \"", key, "\" must be a number, got ", it->dump()));
    return 0.f;
  }
  return it->get<float>();
}

// bos_token_id / eos_token_id: an int or a list of ints.
std::vector<int32_t> get_ids(const json& j, const char* key, Problems& p) {
  std::vector<int32_t> ids;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return ids;
  if (it->is_number_integer()) return {it->get<int32_t>()};
  if (it->is_array()) {
    for (const auto& v : *it) {
      if (!v.is_number_integer()) {
        p.add(str_cat("field \"", key, "\" must hold integers, got ", v.dump()));
        return {};
      }
      ids.push_back(v.get<int32_t>());
    }
    return ids;
  }
  p.add(str_cat("field \"", key, "\" must be an integer or a list of integers"));
  return ids;
}

void read_llama3_scaling(const json& obj, ModelConfig& c, Problems& p, const char* where) {
  std::string type;
  if (auto it = obj.find("rope_type"); it != obj.end() && it->is_string()) type = *it;
  else if (auto it2 = obj.find("type"); it2 != obj.end() && it2->is_string()) type = *it2;
  if (type == "default" || type.empty()) return;
  if (type != "llama3") {
    p.add(str_cat(where, ".rope_type is \"", type, "\"; herd supports \"llama3\" and \"default\""));
    return;
  }
  RopeScaling s;
  s.factor = get_float(obj, "factor", p);
  s.low_freq_factor = get_float(obj, "low_freq_factor", p);
  s.high_freq_factor = get_float(obj, "high_freq_factor", p);
  s.original_max_position = get_int(obj, "original_max_position_embeddings", p);
  c.rope_scaling = s;
}

std::optional<DType> dtype_from_torch_name(const std::string& s) {
  if (s == "bfloat16") return DType::bf16;
  if (s == "float16") return DType::f16;
  if (s == "float32") return DType::f32;
  return std::nullopt;
}

}  // namespace

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  HERD_REQUIRE(f.good(), path, ": cannot open");
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

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

  ModelConfig c;
  c.n_vocab = get_int(j, "vocab_size", p);
  c.n_embd = get_int(j, "hidden_size", p);
  c.n_ff = get_int(j, "intermediate_size", p);
  c.n_layer = get_int(j, "num_hidden_layers", p);
  c.n_head = get_int(j, "num_attention_heads", p);
  c.n_head_kv = get_int(j, "num_key_value_heads", p, c.n_head);
  c.head_dim = get_int(j, "head_dim", p, c.n_head > 0 ? c.n_embd / c.n_head : 0);
  c.n_ctx_train = get_int(j, "max_position_embeddings", p);
  c.norm_eps = get_float(j, "rms_norm_eps", p);
  c.tied_embeddings = j.value("tie_word_embeddings", false);
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    if (j.value(key, false)) p.add(str_cat("\"", key, "\" is true; Llama 3.1 has no biases"));
  }
  if (auto act = j.find("hidden_act"); act != j.end() && *act != "silu")
    p.add(str_cat("\"hidden_act\" is ", act->dump(), ", expected \"silu\""));

  // transformers 5 folds theta and scaling into rope_parameters; transformers 4 keeps them
  // at the top level as rope_theta and rope_scaling.
  if (auto rp = j.find("rope_parameters"); rp != j.end() && rp->is_object()) {
    c.rope_theta = get_float(*rp, "rope_theta", p);
    read_llama3_scaling(*rp, c, p, "rope_parameters");
  } else {
    c.rope_theta = get_float(j, "rope_theta", p, 10000.0f);
    if (auto rs = j.find("rope_scaling"); rs != j.end() && rs->is_object())
      read_llama3_scaling(*rs, c, p, "rope_scaling");
  }

  std::string dtype_s = j.value("dtype", j.value("torch_dtype", std::string("bfloat16")));
  if (auto d = dtype_from_torch_name(dtype_s)) c.dtype = *d;
  else p.add(str_cat("dtype \"", dtype_s, "\" is not one of bfloat16, float16, float32"));

  const auto bos = get_ids(j, "bos_token_id", p);
  c.bos_id = bos.empty() ? -1 : bos[0];
  c.eos_ids = get_ids(j, "eos_token_id", p);
  p.raise_if_any();
  validate_config(c, source);
  return c;
}

ModelConfig parse_meta_params(const std::string& json_text, const std::string& source,
                              float rope_factor) {
  const json j = parse_json(json_text, source);
  Problems p(source);
  ModelConfig c;
  c.n_embd = get_int(j, "dim", p);
  c.n_layer = get_int(j, "n_layers", p);
  c.n_head = get_int(j, "n_heads", p);
  c.n_head_kv = get_int(j, "n_kv_heads", p, c.n_head);
  c.n_vocab = get_int(j, "vocab_size", p);
  c.norm_eps = get_float(j, "norm_eps", p);
  c.rope_theta = get_float(j, "rope_theta", p, 500000.0f);
  const int64_t multiple_of = get_int(j, "multiple_of", p);
  const float ffn_mult = get_float(j, "ffn_dim_multiplier", p, 1.0f);
  p.raise_if_any();

  // llama-models FeedForward: int(2*4*dim/3), times the multiplier, rounded up to multiple_of.
  int64_t hidden = int64_t(2 * (4 * c.n_embd) / 3);
  hidden = int64_t(ffn_mult * float(hidden));
  if (multiple_of > 0) hidden = multiple_of * ((hidden + multiple_of - 1) / multiple_of);
  c.n_ff = hidden;
  c.head_dim = c.n_head > 0 ? c.n_embd / c.n_head : 0;
  c.n_ctx_train = 131072;
  if (j.value("use_scaled_rope", false)) {
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
  GenerationDefaults g;
  if (j.contains("do_sample")) g.do_sample = j["do_sample"].is_boolean() && j["do_sample"].get<bool>();
  if (j.contains("temperature")) g.temperature = get_float(j, "temperature", p);
  if (j.contains("top_p")) g.top_p = get_float(j, "top_p", p);
  if (j.contains("top_k")) g.top_k = int(get_int(j, "top_k", p));
  auto eos = get_ids(j, "eos_token_id", p);
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
  if (!(c.norm_eps > 0.f)) p.add(str_cat("rms_norm_eps must be positive, got ", c.norm_eps));
  if (!(c.rope_theta > 0.f)) p.add(str_cat("rope_theta must be positive, got ", c.rope_theta));
  if (c.rope_scaling) {
    const RopeScaling& s = *c.rope_scaling;
    if (!(s.factor >= 1.f)) p.add(str_cat("rope factor must be >= 1, got ", s.factor));
    if (!(s.high_freq_factor > s.low_freq_factor) || !(s.low_freq_factor > 0.f))
      p.add(str_cat("rope high_freq_factor (", s.high_freq_factor, ") must exceed low_freq_factor (",
                    s.low_freq_factor, ") > 0"));
    if (s.original_max_position <= 0)
      p.add(str_cat("original_max_position_embeddings must be positive, got ", s.original_max_position));
  }
  for (int32_t id : c.eos_ids)
    if (id < 0 || id >= c.n_vocab) p.add(str_cat("eos_token_id ", id, " outside [0, ", c.n_vocab, ")"));
  if (c.bos_id >= c.n_vocab) p.add(str_cat("bos_token_id ", c.bos_id, " outside [0, ", c.n_vocab, ")"));
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
