// Quantized GGUF models (tests/reference/make_gguf_fixtures.py: one random model quantized by
// llama.cpp's own quantizer) against two references on the same 64 ids:
//  - transformers run on the weights gguf-py's numpy dequantizers recover from the file: herd
//    dequantizes exactly as well, so the two agree to FP32 rounding;
//  - llama.cpp itself, which also rounds activations to 8 bits inside its quantized dot
//    products, so it sits a little further from both.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "golden/reference-logits.h"
#include "herd/herd.h"

namespace {

const std::string kDir = std::string(HERD_TEST_DATA) + "/gguf/";
const std::string kDevice = HERD_TEST_DEVICE;

using herd::golden::max_abs;
using herd::golden::max_diff;
using herd::golden::top1_agreement;

struct Ref {
  std::vector<int32_t> ids;
  std::vector<float> logits, llamacpp;
};

Ref load_ref(const std::string& quant) {
  herd::golden::RefLogits f = herd::golden::load_ref_logits(kDir + "quant-" + quant + ".ref.safetensors");
  return Ref{std::move(f.ids), std::move(f.logits), std::move(f.others["logits_llamacpp"])};
}

class GgufQuant : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const auto devices = herd::available_devices();
    if (std::find(devices.begin(), devices.end(), kDevice) == devices.end()) GTEST_SKIP() << "no " << kDevice << " device";
  }
};

// exact: the CPU's reference path; otherwise the device's default kernels (on the CPU, 8-bit
// activations against the quantized weights, as llama.cpp computes).
// tp: tensor-parallel ranks, each holding whole quantization blocks of its columns.
void check_file(const std::string& type, bool exact, int tp = 1) {
  const Ref ref = load_ref(type);
  ASSERT_EQ(ref.ids.size(), 64u);
  herd::ModelOptions opt;
  opt.device = kDevice;
  opt.n_threads = 2;
  opt.max_context = 128;
  opt.exact = exact;
  opt.tensor_parallel = tp;
  std::unique_ptr<herd::Model> model;
  const herd::Status loaded = herd::Model::load(kDir + "quant-" + type + ".gguf", opt, &model);
  ASSERT_TRUE(loaded) << loaded.message();
  std::vector<float> logits;
  ASSERT_TRUE(model->logits(ref.ids, /*all_positions=*/true, &logits));
  ASSERT_EQ(logits.size(), ref.logits.size());

  // llama.cpp's 8-bit activations put it 0.016-0.021 (max abs) from the exact reference on these
  // files (make_gguf_fixtures.py prints it).
  const float scale = max_abs(ref.logits);
  const float d_ref = max_diff(logits, ref.logits);
  const float d_cpp_ref = max_diff(ref.logits, ref.llamacpp), d_cpp = max_diff(logits, ref.llamacpp);
  if (kDevice == "cpu" && exact) {
    EXPECT_LE(d_ref / scale, 1e-4f) << "vs transformers on dequantized weights";
  } else if (kDevice == "cpu") {
    // The fast kernels round activations as llama.cpp does: as far from the exact reference.
    EXPECT_LE(d_ref, 1.5f * d_cpp_ref + 1e-3f) << "vs transformers; llama.cpp is " << d_cpp_ref << " away";
  } else {
    // On CUDA 64 tokens' products widen the weights to BF16 first, which rounds them once more.
    EXPECT_LE(d_ref / scale, 2e-2f) << "vs transformers on dequantized weights";
  }
  // herd must be no further from llama.cpp than twice the exact reference is.
  EXPECT_LE(d_cpp, 2.f * d_cpp_ref + 1e-3f) << "vs llama.cpp; the exact reference is " << d_cpp_ref << " away";
  EXPECT_GE(top1_agreement(logits, ref.llamacpp, size_t(model->info().n_vocab)), 0.95);
  std::printf("%s%s: dtype %s, max|herd - transformers| %.3g, max|herd - llama.cpp| %.3g (reference %.3g), "
              "scale %.3g\n", type.c_str(), exact ? " (exact)" : "", model->info().dtype.c_str(), d_ref, d_cpp,
              d_cpp_ref, scale);
}

TEST_P(GgufQuant, MatchesDequantizedTransformersAndLlamaCpp) { check_file(GetParam(), /*exact=*/true); }

TEST_P(GgufQuant, FastKernelsSitAsCloseAsLlamaCpp) { check_file(GetParam(), /*exact=*/false); }

// Split over 2 and 4 ranks (4 heads over 2 KV heads: at 4 the KV heads are replicated). A rank's
// columns of the output and down projections (128 or 64 of 256) are whole 32-element blocks, but not
// whole 256-element K-quant blocks: those splits are refused, naming the type.
TEST_P(GgufQuant, SplitOverRanksStillMatches) {
  if (kDevice != "cpu") GTEST_SKIP() << "ranks run on the CPU";
  const bool k_quant = GetParam().find("_K") != std::string::npos;
  for (int tp : {2, 4}) {
    if (!k_quant) {
      for (bool exact : {true, false}) check_file(GetParam(), exact, tp);
      continue;
    }
    herd::ModelOptions opt;
    opt.device = kDevice;
    opt.tensor_parallel = tp;
    std::unique_ptr<herd::Model> model;
    const herd::Status s = herd::Model::load(kDir + "quant-" + GetParam() + ".gguf", opt, &model);
    EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
    EXPECT_NE(s.message().find("_K blocks"), std::string::npos) << s.message();
  }
}

// Every output of the fast path is computed by one kernel call whatever the split, so the thread
// count changes nothing, bit for bit: logits at every position, and greedy tokens.
TEST_P(GgufQuant, ThreadCountsGiveIdenticalResults) {
  if (kDevice != "cpu") GTEST_SKIP() << "a CPU property";
  const Ref ref = load_ref(GetParam());
  std::vector<float> first_logits;
  std::vector<int32_t> first_tokens;
  for (int threads : {1, 2, 3}) {
    herd::ModelOptions opt;
    opt.device = kDevice;
    opt.n_threads = threads;
    opt.max_context = 128;
    std::unique_ptr<herd::Model> model;
    ASSERT_TRUE(herd::Model::load(kDir + "quant-" + GetParam() + ".gguf", opt, &model));
    std::vector<float> logits;
    std::vector<int32_t> tokens;
    ASSERT_TRUE(model->logits(ref.ids, /*all_positions=*/true, &logits));
    ASSERT_TRUE(model->generate_greedy(ref.ids, 16, &tokens));
    if (threads == 1) {
      first_logits = logits;
      first_tokens = tokens;
      continue;
    }
    EXPECT_EQ(logits, first_logits) << threads << " threads";
    EXPECT_EQ(tokens, first_tokens) << threads << " threads";
  }
}

INSTANTIATE_TEST_SUITE_P(Files, GgufQuant, testing::Values("Q8_0", "Q4_0", "Q4_1", "Q4_K_M", "Q5_K_M"));

}  // namespace
