// Quantized Hugging Face checkpoints (tests/reference/make_quantized_fixtures.py: one random model
// written in each format's published layout: compressed-tensors FP8 by compressed-tensors itself,
// fbgemm FP8, AWQ, GPTQ symmetric, asymmetric and act-ordered) against transformers run on the
// weights each format's reference dequantization gives, in f32:
//  - the CPU's exact path dequantizes the same way, so the two agree to FP32 rounding;
//  - the CPU's fast kernels round activations to 8 bits (docs/cpu.md), a little further away;
//  - CUDA widens the weights and activations to BF16 for products of more than 8 tokens (these 64
//    positions): BF16 tolerance;
//  - split over 2 tensor-parallel ranks, unchanged; an act-ordered GPTQ layer whose input columns
//    would be split is refused with a message that says why.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "golden/reference-logits.h"
#include "herd/herd.h"

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

INSTANTIATE_TEST_SUITE_P(Formats, QuantizedCheckpoint,
                         testing::Values("ct-fp8-channel", "ct-fp8-tensor", "fbgemm-fp8", "awq-g128", "gptq-g128-sym",
                                         "gptq-g32-asym-actorder", "gptq-g128-asym-v1"),
                         [](const testing::TestParamInfo<std::string>& i) {
                           std::string s = i.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

}  // namespace
