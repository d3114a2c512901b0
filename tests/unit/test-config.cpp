// Config parsing against the published hyperparameters (docs/llama31.md, "Hyperparameters",
// from llama-models' sku_list and model cards) and hand-written files in both transformers layouts.
#include <gtest/gtest.h>

#include <string>

#include "common/check.h"
#include "model/config.h"

namespace herd {
namespace {

const std::string kRoot = HERD_SOURCE_DIR;

// Parameter count of a Llama from its config: the model cards' totals are independent truth.
int64_t n_params(const ModelConfig& c) {
  const int64_t q = c.n_head * c.head_dim, kv = c.n_head_kv * c.head_dim, d = c.n_embd;
  const int64_t layer = 2 * d + d * q + 2 * d * kv + q * d + 3 * d * c.n_ff;
  return c.n_vocab * d * (c.tied_embeddings ? 1 : 2) + d + c.n_layer * layer;
}

struct Preset {
  const char* file;
  int64_t n_ff, head_dim, n_head_kv, n_params;
  bool tied;
  float factor;
};

TEST(Config, PresetsMatchPublishedModels) {
  const Preset presets[] = {
      {"llama-3.1-8b", 14336, 128, 8, 8030261248, false, 8.f},
      {"llama-3.1-70b", 28672, 128, 8, 70553706496, false, 8.f},
      {"llama-3.1-405b", 53248, 128, 8, 405853388800, false, 8.f},
      {"llama-3.2-1b", 8192, 64, 8, 1235814400, true, 32.f},
      {"llama-3.2-3b", 8192, 128, 8, 3212749824, true, 32.f},
  };
  for (const Preset& p : presets) {
    const std::string path = kRoot + "/models/" + p.file + ".json";
    const ModelConfig c = parse_hf_config(read_text_file(path), path);
    EXPECT_EQ(c.n_ff, p.n_ff) << p.file;
    EXPECT_EQ(c.head_dim, p.head_dim) << p.file;
    EXPECT_EQ(c.n_head_kv, p.n_head_kv) << p.file;
    EXPECT_EQ(c.tied_embeddings, p.tied) << p.file;
    EXPECT_EQ(n_params(c), p.n_params) << p.file;
    EXPECT_EQ(c.n_vocab, 128256) << p.file;
    EXPECT_EQ(c.n_ctx_train, 131072) << p.file;
    ASSERT_TRUE(c.rope_scaling.has_value()) << p.file;
    EXPECT_EQ(c.rope_scaling->factor, p.factor) << p.file;
    EXPECT_EQ(c.rope_scaling->original_max_position, 8192) << p.file;
    EXPECT_EQ(c.bos_id, 128000);
    EXPECT_EQ(c.eos_ids, (std::vector<int32_t>{128001, 128008, 128009}));
  }
}

TEST(Config, MetaParamsDeriveTheFfnSize) {
  // docs/llama31.md, "Derived sizes": dim, heads, kv heads, ffn_dim_multiplier, multiple_of -> FFN width.
  struct Row {
    int dim, n_heads, n_kv;
    double mult;
    int multiple_of;
    int64_t expect_ff;
  };
  const Row rows[] = {{4096, 32, 8, 1.3, 1024, 14336},
                      {8192, 64, 8, 1.3, 4096, 28672},
                      {16384, 128, 8, 1.2, 4096, 53248},
                      {2048, 32, 8, 1.5, 256, 8192},
                      {3072, 24, 8, 1.0, 256, 8192}};
  for (const Row& r : rows) {
    const std::string json = "{\"dim\": " + std::to_string(r.dim) + ", \"n_layers\": 2, \"n_heads\": " +
                             std::to_string(r.n_heads) + ", \"n_kv_heads\": " + std::to_string(r.n_kv) +
                             ", \"vocab_size\": 128256, \"ffn_dim_multiplier\": " + std::to_string(r.mult) +
                             ", \"multiple_of\": " + std::to_string(r.multiple_of) +
                             ", \"norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"use_scaled_rope\": true}";
    const ModelConfig c = parse_meta_params(json, "params.json");
    EXPECT_EQ(c.n_ff, r.expect_ff) << r.dim;
    EXPECT_EQ(c.head_dim, r.dim / r.n_heads);
    EXPECT_EQ(c.qk_layout, QkLayout::interleaved);
    ASSERT_TRUE(c.rope_scaling.has_value());
    EXPECT_EQ(c.rope_scaling->factor, 8.f);  // params.json does not say; Llama 3.1's
    EXPECT_EQ(c.bos_id, 128000);
  }
  const auto c32 = parse_meta_params(
      R"({"dim": 2048, "n_layers": 16, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256, "ffn_dim_multiplier": 1.5,
          "multiple_of": 256, "norm_eps": 1e-05, "rope_theta": 500000.0, "use_scaled_rope": true})",
      "params.json", 32.f);
  EXPECT_EQ(c32.rope_scaling->factor, 32.f);
}

// The same model in the transformers 4 layout (with the older "type" key) and the 5 layout.
const char* kV4 = R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 1000, "hidden_size": 64,
  "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "max_position_embeddings": 4096, "rms_norm_eps": 1e-06, "rope_theta": 500000.0,
  "rope_scaling": {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192},
  "torch_dtype": "float16", "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": true})";
const char* kV5 = R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 1000, "hidden_size": 64,
  "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "max_position_embeddings": 4096, "rms_norm_eps": 1e-06,
  "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
  "dtype": "float16", "bos_token_id": 1, "eos_token_id": [2, 3], "tie_word_embeddings": true})";

TEST(Config, BothTransformersLayouts) {
  for (const char* text : {kV4, kV5}) {
    const ModelConfig c = parse_hf_config(text, "config.json");
    EXPECT_EQ(c.n_vocab, 1000);
    EXPECT_EQ(c.n_embd, 64);
    EXPECT_EQ(c.n_ff, 96);
    EXPECT_EQ(c.n_layer, 2);
    EXPECT_EQ(c.n_head, 4);
    EXPECT_EQ(c.n_head_kv, 2);
    EXPECT_EQ(c.head_dim, 16);  // hidden / heads when head_dim is absent
    EXPECT_EQ(c.n_ctx_train, 4096);
    EXPECT_FLOAT_EQ(c.norm_eps, 1e-6f);
    EXPECT_EQ(c.rope_theta, 500000.f);
    ASSERT_TRUE(c.rope_scaling.has_value());
    EXPECT_EQ(c.rope_scaling->factor, 8.f);
    EXPECT_EQ(c.rope_scaling->high_freq_factor, 4.f);
    EXPECT_EQ(c.rope_scaling->original_max_position, 8192);
    EXPECT_TRUE(c.tied_embeddings);
    EXPECT_EQ(c.dtype, DType::f16);
    EXPECT_EQ(c.bos_id, 1);
  }
  EXPECT_EQ(parse_hf_config(kV4, "c").eos_ids, (std::vector<int32_t>{2}));
  EXPECT_EQ(parse_hf_config(kV5, "c").eos_ids, (std::vector<int32_t>{2, 3}));
}

std::string error_of(const std::string& text) {
  try {
    parse_hf_config(text, "cfg/config.json");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_input);
    return e.what();
  }
  ADD_FAILURE() << "no error for " << text;
  return "";
}

TEST(Config, ReportsEveryProblemAtOnce) {
  const std::string msg = error_of(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10,
      "intermediate_size": "big", "num_attention_heads": 4, "max_position_embeddings": 8, "rms_norm_eps": 1e-5})");
  EXPECT_NE(msg.find("cfg/config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"hidden_size\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"num_hidden_layers\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"intermediate_size\" must be an integer"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line";
}

TEST(Config, RejectsWhatItCannotRun) {
  EXPECT_NE(error_of(R"({"architectures": ["MistralForCausalLM"]})").find("unsupported architecture"), std::string::npos);
  EXPECT_NE(error_of("{not json").find("not valid JSON"), std::string::npos);
  std::string bad_heads = kV4;
  bad_heads.replace(bad_heads.find("\"num_key_value_heads\": 2"), 24, "\"num_key_value_heads\": 3");
  EXPECT_NE(error_of(bad_heads).find("multiple of num_key_value_heads"), std::string::npos);
  std::string yarn = kV4;
  yarn.replace(yarn.find("\"type\": \"llama3\""), 16, "\"type\": \"yarn\"");
  EXPECT_NE(error_of(yarn).find("\"yarn\""), std::string::npos);
  std::string eos = kV4;
  eos.replace(eos.find("\"eos_token_id\": 2"), 17, "\"eos_token_id\": 5000");
  EXPECT_NE(error_of(eos).find("eos_token_id 5000"), std::string::npos);
}

// kV4 with `field` (its text as written there) replaced by `value`, or with `value` added.
std::string with(const std::string& field, const std::string& value) {
  std::string text = kV4;
  const size_t at = text.find(field);
  if (at == std::string::npos) return text.substr(0, text.size() - 1) + ", " + value + "}";
  const size_t end = text.find_first_of(",}", text.find(':', at));
  return text.replace(at, end - at, value);
}

TEST(Config, MistypedFieldsNameTheFieldAndType) {
  const std::pair<std::string, std::string> cases[] = {
      {R"("tie_word_embeddings": "no")", R"(field "tie_word_embeddings" must be a boolean)"},
      {R"("attention_bias": 0)", R"(field "attention_bias" must be a boolean)"},
      {R"("torch_dtype": 16)", R"(field "torch_dtype" must be a string)"},
      {R"("rms_norm_eps": "1e-5")", R"(field "rms_norm_eps" must be a number)"},
      {R"("num_hidden_layers": 2.5)", R"(field "num_hidden_layers" must be an integer)"},
      {R"("num_hidden_layers": 18446744073709551615)", R"(field "num_hidden_layers" must be an integer)"},
      {R"("bos_token_id": "1")", R"(field "bos_token_id" must be a token id)"},
      {R"("eos_token_id": 5000000000)", R"(field "eos_token_id" must be a token id)"},
      {R"("bos_token_id": -3)", R"(field "bos_token_id" must be a token id)"},
      {R"("rope_parameters": [1])", R"(field "rope_parameters" must be a JSON object)"},
  };
  for (const auto& [field, expect] : cases) {
    const std::string text = with(field.substr(0, field.find(':')), field);
    const std::string msg = error_of(text);
    EXPECT_NE(msg.find("cfg/config.json: "), std::string::npos) << msg;
    EXPECT_NE(msg.find(expect), std::string::npos) << field << " -> " << msg;
  }
}

TEST(Config, RejectsNonsenseValues) {
  const std::pair<std::string, std::string> cases[] = {
      {R"("rms_norm_eps": 1e40)", R"(field "rms_norm_eps" must be a finite number)"},
      {R"("rms_norm_eps": 0)", "rms_norm_eps must lie in (0, 1]"},
      {R"("rms_norm_eps": -1e-5)", "rms_norm_eps must lie in (0, 1]"},
      {R"("rms_norm_eps": 2.0)", "rms_norm_eps must lie in (0, 1]"},
      {R"("rope_theta": 1e39)", R"(field "rope_theta" must be a finite number)"},
      {R"("rope_theta": 0)", "rope_theta must be positive"},
      {R"("rope_theta": -10)", "rope_theta must be positive"},
      {R"("bos_token_id": 1000)", "bos_token_id 1000 outside [0, 1000)"},
      {R"("eos_token_id": [2, 4096])", "eos_token_id 4096 outside"},
  };
  for (const auto& [field, expect] : cases) {
    const std::string msg = error_of(with(field.substr(0, field.find(':')), field));
    EXPECT_NE(msg.find(expect), std::string::npos) << field << " -> " << msg;
  }
}

TEST(Config, RejectsBrokenRopeScaling) {
  const std::string head = R"("rope_scaling": {"type": "llama3", )";
  const std::pair<std::string, std::string> cases[] = {
      {head + R"("factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0})",
       R"(missing field "rope_scaling.original_max_position_embeddings")"},
      {head + R"("low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})",
       R"(missing field "rope_scaling.factor")"},
      {head + R"("factor": "8", "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})",
       R"(field "rope_scaling.factor" must be a number)"},
      {head + R"("factor": 1e300, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})",
       R"(field "rope_scaling.factor" must be a finite number)"},
      {head + R"("factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 1e9})",
       R"(field "rope_scaling.original_max_position_embeddings" must be an integer)"},
      {head + R"("factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 99999999999})",
       "original_max_position_embeddings must lie in [1, 2^26]"},
      {R"("rope_scaling": {"type": 3})", R"(field "rope_scaling.type" must be a string)"},
      {R"("rope_scaling": "llama3")", R"(field "rope_scaling" must be a JSON object)"},
  };
  for (const auto& [block, expect] : cases) {
    std::string text = kV4;
    const size_t at = text.find("\"rope_scaling\"");
    text.replace(at, text.find('}', at) + 1 - at, block);
    const std::string msg = error_of(text);
    EXPECT_NE(msg.find(expect), std::string::npos) << block << " -> " << msg;
  }
}

TEST(Config, DeepNestingIsRefusedNamingTheFileAndLimit) {
  const std::string deep = std::string(50000, '[') + std::string(50000, ']');
  const std::string msg = error_of(with("\"extra\"", "\"extra\": " + deep));
  EXPECT_NE(msg.find("cfg/config.json: JSON nested deeper than 128 levels"), std::string::npos) << msg;
  std::vector<int32_t> eos;
  EXPECT_THROW(parse_generation_config("{\"a\": " + deep + "}", "generation_config.json", &eos), Error);
  EXPECT_THROW(parse_meta_params("{\"a\": " + deep + "}", "params.json"), Error);
}

std::string generation_error(const std::string& text) {
  std::vector<int32_t> eos;
  try {
    parse_generation_config(text, "m/generation_config.json", &eos);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_input);
    return e.what();
  }
  ADD_FAILURE() << "no error for " << text;
  return "";
}

TEST(Config, GenerationConfigErrorsNameTheFileAndField) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"temperature": -1})", R"(field "temperature" must be >= 0)"},
      {R"({"temperature": "hot"})", R"(field "temperature" must be a number)"},
      {R"({"top_p": 7})", R"(field "top_p" must lie in (0, 1])"},
      {R"({"top_p": 0})", R"(field "top_p" must lie in (0, 1])"},
      {R"({"top_k": -2})", R"(field "top_k" must lie in [0, 2^31))"},
      {R"({"top_k": 9999999999})", R"(field "top_k" must lie in [0, 2^31))"},
      {R"({"do_sample": "yes"})", R"(field "do_sample" must be a boolean)"},
      {R"({"eos_token_id": [1, "2"]})", R"(field "eos_token_id" must be a token id)"},
  };
  for (const auto& [text, expect] : cases) {
    const std::string msg = generation_error(text);
    EXPECT_EQ(msg.rfind("m/generation_config.json: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(expect), std::string::npos) << text << " -> " << msg;
  }
}

TEST(Config, MetaParamsFieldsAreTyped) {
  const std::string base = R"({"dim": 64, "n_layers": 2, "n_heads": 4, "vocab_size": 1000, "multiple_of": 32,
      "norm_eps": 1e-05)";
  for (const auto& [extra, expect] :
       {std::pair{R"(, "use_scaled_rope": "yes"})", R"(field "use_scaled_rope" must be a boolean)"},
        std::pair{R"(, "ffn_dim_multiplier": 1e30})", R"(field "ffn_dim_multiplier" must lie in (0, 64])"},
        std::pair{R"(, "rope_theta": "big"})", R"(field "rope_theta" must be a number)"}}) {
    try {
      parse_meta_params(base + extra, "m/params.json");
      ADD_FAILURE() << "no error for " << extra;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("m/params.json: ")), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
  }
}

TEST(Config, GenerationConfigOverridesEosAndGivesDefaults) {
  std::vector<int32_t> eos{2};
  const auto g = parse_generation_config(
      R"({"do_sample": true, "temperature": 0.6, "top_p": 0.9, "eos_token_id": [128001, 128008, 128009]})",
      "generation_config.json", &eos);
  EXPECT_EQ(eos, (std::vector<int32_t>{128001, 128008, 128009}));
  EXPECT_TRUE(g.do_sample.value_or(false));
  EXPECT_FLOAT_EQ(g.temperature.value_or(0.f), 0.6f);
  EXPECT_FLOAT_EQ(g.top_p.value_or(0.f), 0.9f);
  EXPECT_FALSE(g.top_k.has_value());
}

TEST(Config, WrittenConfigReadsBack) {
  const ModelConfig c = parse_hf_config(kV5, "c");
  const ModelConfig back = parse_hf_config(to_hf_config_json(c), "written");
  EXPECT_EQ(back.n_ff, c.n_ff);
  EXPECT_EQ(back.head_dim, c.head_dim);
  EXPECT_EQ(back.rope_scaling->factor, c.rope_scaling->factor);
  EXPECT_EQ(back.eos_ids, c.eos_ids);
  EXPECT_EQ(back.tied_embeddings, c.tied_embeddings);
}

}  // namespace
}  // namespace herd
