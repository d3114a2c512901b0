// The chain's distribution and log-softmax against torch + transformers' logits processors,
// composed in herd's order by tests/reference/make_sampling_vectors.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <vector>

#include "sampling/logprobs.h"
#include "sampling/sampler.h"

namespace herd {
namespace {

using nlohmann::json;

const json& cases() {
  static const json j = [] {
    std::ifstream f(HERD_TEST_DATA "/sampling/vectors.json");
    EXPECT_TRUE(f) << "missing " HERD_TEST_DATA "/sampling/vectors.json";
    return json::parse(f);
  }();
  return j.at("cases");
}

SamplingParams params_of(const json& p) {
  SamplingParams s;
  s.temperature = p.at("temperature").get<float>();
  s.top_k = p.at("top_k").get<int32_t>();
  s.top_p = p.at("top_p").get<float>();
  s.min_p = p.at("min_p").get<float>();
  s.repetition_penalty = p.at("repetition_penalty").get<float>();
  s.frequency_penalty = p.at("frequency_penalty").get<float>();
  s.presence_penalty = p.at("presence_penalty").get<float>();
  return s;
}

TEST(ChainVectors, DistributionMatchesTransformers) {
  ASSERT_GE(cases().size(), 10u);
  for (const json& c : cases()) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const auto logits = c.at("logits").get<std::vector<float>>();
    const auto prompt = c.at("prompt").get<std::vector<int32_t>>();
    const auto generated = c.at("generated").get<std::vector<int32_t>>();
    const auto expected = c.at("probs").get<std::vector<double>>();

    Sampler s(params_of(c.at("params")));
    std::vector<double> got(logits.size(), 0.0);
    std::span<const TokenProb> dist = s.distribution(logits, prompt, generated);
    EXPECT_EQ(dist.size(), c.at("n_kept").get<size_t>());
    for (const TokenProb& t : dist) got[size_t(t.id)] = t.p;
    for (size_t i = 0; i < logits.size(); ++i)
      ASSERT_NEAR(got[i], expected[i], 1e-5) << "token " << i;
  }
}

TEST(ChainVectors, LogSoftmaxMatchesTorch) {
  for (const json& c : cases()) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const auto logits = c.at("logits").get<std::vector<float>>();
    const auto expected = c.at("log_softmax").get<std::vector<double>>();
    std::vector<float> got(logits.size());
    log_softmax(logits, got);
    for (size_t i = 0; i < logits.size(); ++i)
      ASSERT_NEAR(got[i], expected[i], 1e-5) << "token " << i;

    // Top 5 and one token's logprob, against the same torch values ranked here.
    std::vector<int32_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return expected[size_t(a)] > expected[size_t(b)];
    });
    const PositionLogprobs pos = position_logprobs(logits, 3, 5);
    EXPECT_NEAR(pos.token.logprob, expected[3], 1e-5);
    ASSERT_EQ(pos.top.size(), 5u);
    for (size_t r = 0; r < 5; ++r) {
      EXPECT_EQ(pos.top[r].id, order[r]) << "rank " << r;
      EXPECT_NEAR(pos.top[r].logprob, expected[size_t(order[r])], 1e-5) << "rank " << r;
    }
  }
}

}  // namespace
}  // namespace herd
