// The public API (include/herd): what a program linking libherd sees, errors included.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "herd/herd.h"

namespace fs = std::filesystem;

namespace {

const std::string kModels = std::string(HERD_TEST_DATA) + "/models";

herd::ModelOptions cpu_options() {
  herd::ModelOptions o;
  o.device = "cpu";
  o.n_threads = 2;
  o.max_context = 64;
  return o;
}

TEST(Api, LoadErrorsNameThePath) {
  std::unique_ptr<herd::Model> m;
  const auto s = herd::Model::load("/nonexistent/model", cpu_options(), &m);
  EXPECT_EQ(s.code(), herd::Status::Code::not_found);
  EXPECT_TRUE(s.is_caller_error());
  EXPECT_NE(s.message().find("/nonexistent/model"), std::string::npos);
  EXPECT_EQ(m, nullptr);

  const fs::path d = fs::temp_directory_path() / ("herd-api-" + std::to_string(::getpid()));
  fs::create_directories(d);
  std::ofstream(d / "config.json") << R"({"architectures": ["GPT2LMHeadModel"]})";
  const auto s2 = herd::Model::load(d.string(), cpu_options(), &m);
  EXPECT_EQ(s2.code(), herd::Status::Code::invalid_input);
  EXPECT_NE(s2.message().find("unsupported architecture [\"GPT2LMHeadModel\"]"), std::string::npos) << s2.message();
  fs::remove_all(d);
}

TEST(Api, RequestErrors) {
  std::unique_ptr<herd::Model> m;
  auto opt = cpu_options();
  opt.max_context = 16;
  ASSERT_TRUE(herd::Model::load(kModels + "/mha-hd64-untied", opt, &m));
  EXPECT_EQ(m->info().max_context, 16);
  std::vector<float> logits;
  auto s = m->logits({1, 256}, false, &logits);
  EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
  EXPECT_NE(s.message().find("token id 256 is outside the vocabulary [0, 256)"), std::string::npos) << s.message();
  EXPECT_EQ(m->logits({}, false, &logits).code(), herd::Status::Code::invalid_input);
  std::vector<int32_t> out;
  s = m->generate_greedy(std::vector<int32_t>(10, 3), 7, &out);
  EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
  EXPECT_NE(s.message().find("exceed the context of 16 tokens"), std::string::npos) << s.message();
}

TEST(Api, InfoDescribesTheModel) {
  std::unique_ptr<herd::Model> m;
  ASSERT_TRUE(herd::Model::load(kModels + "/gqa4-hd32-untied-llama3", cpu_options(), &m));
  const auto& i = m->info();
  EXPECT_EQ(i.n_vocab, 256);
  EXPECT_EQ(i.n_head, 4);
  EXPECT_EQ(i.n_head_kv, 1);
  EXPECT_EQ(i.head_dim, 32);
  EXPECT_EQ(i.dtype, "BF16");
  EXPECT_TRUE(i.device.starts_with("cpu (")) << i.device;  // "cpu (avx512)": the kernels in use
  EXPECT_EQ(i.eos_ids, std::vector<int32_t>{2});
}

TEST(Api, StreamingCallbackCanStop) {
  std::unique_ptr<herd::Model> m;
  ASSERT_TRUE(herd::Model::load(kModels + "/gqa4-hd32-untied-llama3", cpu_options(), &m));
  std::vector<int32_t> seen, out;
  ASSERT_TRUE(m->generate_greedy({5, 6, 7}, 10, &out, [&](int32_t t) {
    seen.push_back(t);
    return seen.size() < 3;
  }));
  EXPECT_EQ(out.size(), 3u);
  EXPECT_EQ(seen, out);
}

TEST(Api, UnknownDevice) {
  std::unique_ptr<herd::Model> m;
  auto o = cpu_options();
  o.device = "tpu";
  const auto s = herd::Model::load(kModels + "/mha-hd64-untied", o, &m);
  EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
  EXPECT_NE(s.message().find("device tpu"), std::string::npos) << s.message();
  const auto devices = herd::available_devices();
  if (std::find(devices.begin(), devices.end(), "cuda") == devices.end()) {
    o.device = "cuda";
    const auto s2 = herd::Model::load(kModels + "/mha-hd64-untied", o, &m);
    EXPECT_EQ(s2.code(), herd::Status::Code::invalid_input);
    EXPECT_NE(s2.message().find("device cuda"), std::string::npos) << s2.message();
  }
}

// A tiny model with Llama 3's whole 128,256-token vocabulary, written by herd's synthetic writer.
TEST(Api, SyntheticModelWithTheFullVocabulary) {
  const fs::path d = fs::temp_directory_path() / ("herd-synth-" + std::to_string(::getpid()));
  fs::create_directories(d);
  std::ofstream(d / "base.json") << R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 128256,
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
    "num_key_value_heads": 1, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192},
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "tie_word_embeddings": true})";
  herd::SyntheticModelSpec spec;
  spec.config_path = (d / "base.json").string();
  spec.seed = 3;
  ASSERT_TRUE(herd::write_synthetic_model(spec, (d / "model").string()));
  std::unique_ptr<herd::Model> m;
  ASSERT_TRUE(herd::Model::load((d / "model").string(), cpu_options(), &m));
  EXPECT_EQ(m->info().n_vocab, 128256);
  EXPECT_TRUE(m->info().tied_embeddings);
  std::vector<float> logits;
  ASSERT_TRUE(m->logits({128000, 9906, 128009}, true, &logits));
  EXPECT_EQ(logits.size(), 3u * 128256u);
  EXPECT_TRUE(std::all_of(logits.begin(), logits.end(), [](float v) { return std::isfinite(v); }));

  spec.dtype = "f64";
  const auto bad = herd::write_synthetic_model(spec, (d / "bad").string());
  EXPECT_EQ(bad.code(), herd::Status::Code::invalid_input);
  fs::remove_all(d);
}

// Synthetic models with their layers' matrices quantized (benchmarks of the quantized formats at
// full size without files): each loads, reports its type, reads fewer bytes a decode step than the
// BF16 model and greedy-decodes the same tokens on the exact path and the fast kernels until a
// near-tie; none can be written to files.
TEST(Api, SyntheticQuantizedModels) {
  const fs::path d = fs::temp_directory_path() / ("herd-synth-q-" + std::to_string(::getpid()));
  fs::create_directories(d);
  std::ofstream(d / "base.json") << R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 512,
    "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
    "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": false})";
  herd::SyntheticModelSpec spec;
  spec.config_path = (d / "base.json").string();
  herd::EngineOptions opt;
  opt.device = "cpu";
  opt.n_threads = 2;
  opt.kv_memory = 64 << 20;
  int64_t bf16_bytes = 0;
  for (const char* dtype : {"bf16", "fp8", "int4", "q8_0", "q4_0", "q4_1", "q6_k"}) {
    spec.dtype = dtype;
    std::vector<int32_t> ids[2];
    for (bool exact : {true, false}) {
      opt.exact = exact;
      std::unique_ptr<herd::Engine> e;
      ASSERT_TRUE(herd::Engine::load_synthetic(spec, opt, &e)) << dtype;
      std::string upper(dtype);
      for (char& ch : upper) ch = char(std::toupper(ch));
      EXPECT_EQ(e->info().dtype, upper);
      if (spec.dtype == "bf16") bf16_bytes = e->info().decode_weight_bytes;
      else EXPECT_LT(e->info().decode_weight_bytes, bf16_bytes * 2 / 3) << dtype;
      herd::GenerateRequest r;
      r.prompt = {1, 100, 200, 300, 400};
      r.max_tokens = 12;
      herd::GenerateResult out;
      ASSERT_TRUE(e->generate(r, &out)) << dtype;
      ids[exact ? 0 : 1] = out.ids;
    }
    EXPECT_EQ(ids[0].size(), 12u);
    // 8-bit activations may flip a near-tie; the first tokens agree.
    EXPECT_EQ(std::vector<int32_t>(ids[0].begin(), ids[0].begin() + 3), std::vector<int32_t>(ids[1].begin(), ids[1].begin() + 3))
        << dtype;
  }
  spec.dtype = "fp8";
  const auto bad = herd::write_synthetic_model(spec, (d / "bad").string());
  EXPECT_EQ(bad.code(), herd::Status::Code::invalid_input);
  EXPECT_NE(bad.message().find("herd quantize"), std::string::npos) << bad.message();
  fs::remove_all(d);
}

}  // namespace
