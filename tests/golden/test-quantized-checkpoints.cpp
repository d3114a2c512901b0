// Quantized Hugging Face checkpoints (tests/reference/make_quantized_fixtures.py: one random model
// written in each format's published layout: compressed-tensors FP8 by compressed-tensors itself,
// fbgemm FP8, AWQ, GPTQ symmetric, asymmetric and act-ordered) against transformers run on the
// weights each format's reference dequantization gives, in f32:
//  - the CPU's exact path dequantizes the same way, so the two agree to FP32 rounding;
//  - the CPU's fast kernels round activations to 8 bits (docs/cpu.md), a little further away;
//  - CUDA widens the weights and activations to BF16 for products of more than 8 tokens (these 64
//    positions): BF16 tolerance; FP8 weights multiply activations quantized per token to FP8 there;
//  - split over 2 tensor-parallel ranks, unchanged; an act-ordered GPTQ layer whose input columns
//    would be split is refused with a message that says why.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "golden/reference-logits.h"
#include "herd/herd.h"
#include "model/safetensors-writer.h"
#include "model/safetensors.h"

namespace {

const std::string kDir = std::string(HERD_TEST_DATA) + "/quantized/";
const std::string kDevice = HERD_TEST_DEVICE;

using herd::golden::max_abs;
using herd::golden::max_diff;
using herd::golden::top1_agreement;

class QuantizedCheckpoint : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const auto devices = herd::available_devices();
    if (std::find(devices.begin(), devices.end(), kDevice) == devices.end()) GTEST_SKIP() << "no " << kDevice << " device";
  }
};

herd::Status load(const std::string& name, bool exact, int tp, std::unique_ptr<herd::Model>* model) {
  herd::ModelOptions opt;
  opt.device = kDevice;
  opt.n_threads = 2;
  opt.max_context = 128;
  opt.exact = exact;
  opt.tensor_parallel = tp;
  return herd::Model::load(kDir + name, opt, model);
}

void check(const std::string& name, bool exact, int tp = 1) {
  const herd::golden::RefLogits ref = herd::golden::load_ref_logits(kDir + name + ".ref.safetensors");
  ASSERT_EQ(ref.ids.size(), 64u);
  std::unique_ptr<herd::Model> model;
  const herd::Status loaded = load(name, exact, tp, &model);
  ASSERT_TRUE(loaded) << loaded.message();
  std::vector<float> logits;
  ASSERT_TRUE(model->logits(ref.ids, /*all_positions=*/true, &logits));
  ASSERT_EQ(logits.size(), ref.logits.size());
  const float scale = max_abs(ref.logits), d = max_diff(logits, ref.logits);
  if (kDevice == "cpu" && exact) {
    EXPECT_LE(d / scale, 1e-4f) << "vs transformers on the dequantized weights";
  } else if (kDevice == "cpu") {
    // 8-bit activations: as far as they put the GGUF files from the exact path (test-gguf-quant).
    EXPECT_LE(d / scale, 2e-2f) << "vs transformers on the dequantized weights";
    EXPECT_GE(top1_agreement(logits, ref.logits, size_t(model->info().n_vocab)), 0.95);
  } else if (name.find("fp8") != std::string::npos) {
    // FP8 x FP8 on the GPU's tensor cores, as the formats specify (activations quantized per token to
    // E4M3, 3 mantissa bits, on GPUs that have FP8 tensor cores): coarser than 8-bit integers.
    EXPECT_LE(d / scale, 6e-2f) << "vs transformers; FP8 activations on the device";
    EXPECT_GE(top1_agreement(logits, ref.logits, size_t(model->info().n_vocab)), 0.9);
  } else {
    EXPECT_LE(d / scale, 2e-2f) << "vs transformers; weights are BF16 on the device";
    EXPECT_GE(top1_agreement(logits, ref.logits, size_t(model->info().n_vocab)), 0.95);
  }
  std::printf("%s%s tp %d: dtype %s, max|herd - transformers| %.3g, scale %.3g\n", name.c_str(),
              exact ? " (exact)" : "", tp, model->info().dtype.c_str(), d, scale);
}

TEST_P(QuantizedCheckpoint, MatchesTransformersOnTheDequantizedWeights) { check(GetParam(), /*exact=*/true); }

TEST_P(QuantizedCheckpoint, FastKernelsStayClose) { check(GetParam(), /*exact=*/false); }

TEST_P(QuantizedCheckpoint, SplitOverTwoRanks) {
  if (kDevice != "cpu") GTEST_SKIP() << "ranks run on the CPU";
  if (GetParam().find("actorder") == std::string::npos) {
    for (bool exact : {true, false}) check(GetParam(), exact, 2);
    return;
  }
  std::unique_ptr<herd::Model> model;
  const herd::Status s = load(GetParam(), true, 2, &model);
  EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
  EXPECT_NE(s.message().find("act order (desc_act) cannot be split by its input columns"), std::string::npos)
      << s.message();
}

// A checkpoint quantized with a KV cache scheme (compressed-tensors' kv_cache_scheme: FP8, one scale
// per layer for K and one for V, stored as self_attn.k_scale and v_scale): the FP8 fixture again with
// that scheme and those scalars added. With --kv-dtype fp8 the cache holds k / k_scale and
// v / v_scale, so the logits stay within the FP8 cache's tolerance of transformers' and move with
// the scales; a scale that is not one positive float is refused, naming the tensor.
class KvCacheScheme : public QuantizedCheckpoint {
 protected:
  // ct-fp8-tensor with the scheme and the scales (bad_v_scale for layer 1's v_scale when set).
  std::string write_copy(float k_scale, float v_scale, std::optional<float> bad_v_scale = {},
                         const char* strategy = "tensor") {
    namespace fs = std::filesystem;
    const std::string dir = ::testing::TempDir() + "herd-kv-scheme-" + std::to_string(::getpid()) + "-" +
                            std::to_string(n_copies_++);
    fs::remove_all(dir);
    fs::create_directories(dir);
    nlohmann::json config = nlohmann::json::parse(std::ifstream(kDir + "ct-fp8-tensor/config.json"));
    config["quantization_config"]["kv_cache_scheme"] = {
        {"num_bits", 8}, {"type", "float"}, {"strategy", strategy}, {"dynamic", false}, {"symmetric", true}};
    std::ofstream(dir + "/config.json") << config.dump(2);
    const herd::SafetensorsFile src(kDir + "ct-fp8-tensor/model.safetensors");
    herd::SafetensorsWriter out(dir);
    const int64_t n_layer = config["num_hidden_layers"].get<int64_t>();
    for (const auto& e : src.header().tensors) out.plan(e.name, e.dtype, e.shape);
    for (int64_t l = 0; l < n_layer; ++l)
      for (const char* s : {"k_scale", "v_scale"})
        out.plan("model.layers." + std::to_string(l) + ".self_attn." + s, herd::DType::f32, {});
    for (const auto& e : src.header().tensors) out.write(src.view(e).data, e.end - e.begin);
    for (int64_t l = 0; l < n_layer; ++l) {
      out.write(&k_scale, 4);
      const float v = l == 1 && bad_v_scale ? *bad_v_scale : v_scale;
      out.write(&v, 4);
    }
    out.finish();
    return dir;
  }
  static herd::Status load_fp8_kv(const std::string& dir, std::unique_ptr<herd::Model>* model) {
    herd::ModelOptions opt;
    opt.device = kDevice;
    opt.n_threads = 2;
    opt.max_context = 128;
    opt.kv_dtype = "fp8";
    return herd::Model::load(dir, opt, model);
  }
  int n_copies_ = 0;
};

TEST_F(KvCacheScheme, ScalesAreReadAndUsedByAnFp8Cache) {
  const herd::golden::RefLogits ref = herd::golden::load_ref_logits(kDir + "ct-fp8-tensor.ref.safetensors");
  auto logits_of = [&](const std::string& dir) {
    std::unique_ptr<herd::Model> model;
    const herd::Status loaded = load_fp8_kv(dir, &model);
    EXPECT_TRUE(loaded) << loaded.message();
    std::vector<float> logits;
    if (model) {
      EXPECT_TRUE(model->logits(ref.ids, /*all_positions=*/true, &logits));
    }
    return logits;
  };
  const auto unscaled = logits_of(kDir + "ct-fp8-tensor");
  const std::string dir = write_copy(0.02f, 0.01f);
  const auto scaled = logits_of(dir);
  ASSERT_EQ(scaled.size(), ref.logits.size());
  const float scale = max_abs(ref.logits);
  // The FP8 cache's tolerance (test-reference-logits.cpp), scales or not.
  EXPECT_LE(max_diff(scaled, ref.logits) / scale, 5e-2f);
  EXPECT_LE(max_diff(unscaled, ref.logits) / scale, 5e-2f);
  EXPECT_GT(max_diff(scaled, unscaled), 0.f) << "the scales changed nothing: were they read?";
  std::printf("FP8 KV cache: max|herd - transformers| %.3g with the scales, %.3g without, scale %.3g\n",
              max_diff(scaled, ref.logits), max_diff(unscaled, ref.logits), scale);
  std::filesystem::remove_all(dir);
}

TEST_F(KvCacheScheme, BadScalesAndSchemesAreRefused) {
  auto expect_refused = [&](const std::string& dir, const std::string& says) {
    std::unique_ptr<herd::Model> model;
    const herd::Status s = load_fp8_kv(dir, &model);
    EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
    EXPECT_NE(s.message().find(says), std::string::npos) << s.message();
    std::filesystem::remove_all(dir);
  };
  for (float bad : {-1.f, 0.f, NAN})
    expect_refused(write_copy(0.02f, 0.01f, bad), "model.layers.1.self_attn.v_scale\" must be one positive finite float");
  expect_refused(write_copy(0.02f, 0.01f, {}, "channel"), "quantization_config.kv_cache_scheme.strategy is \"channel\"");
}

INSTANTIATE_TEST_SUITE_P(Formats, QuantizedCheckpoint,
                         testing::Values("ct-fp8-channel", "ct-fp8-tensor", "fbgemm-fp8", "awq-g128", "gptq-g128-sym",
                                         "gptq-g32-asym-actorder", "gptq-g128-asym-v1"),
                         [](const testing::TestParamInfo<std::string>& i) {
                           std::string s = i.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

}  // namespace
