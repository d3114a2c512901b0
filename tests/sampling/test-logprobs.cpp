// Logprobs on rows whose answers are known by hand (torch's values: test-chain-vectors.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/check.h"
#include "sampling/logprobs.h"

namespace herd {
namespace {

TEST(Logprobs, UniformRowIsMinusLogN) {
  std::vector<float> logits(4, 0.25f), out(4);
  log_softmax(logits, out);
  for (float v : out) EXPECT_NEAR(v, -std::log(4.0), 1e-7);
}

TEST(Logprobs, HugeLogitsStayFinite) {
  // exp(1000) overflows without the maximum factored out.
  std::vector<float> logits = {1000.0f, 1000.0f, -1000.0f}, out(3);
  log_softmax(logits, out);
  EXPECT_NEAR(out[0], -std::log(2.0), 1e-6);
  EXPECT_NEAR(out[1], -std::log(2.0), 1e-6);
  EXPECT_NEAR(out[2], -2000.0 - std::log(2.0), 1e-3);
  EXPECT_NEAR(log_sum_exp(logits), 1000.0 + std::log(2.0), 1e-6);
}

TEST(Logprobs, MaskedTokensAreMinusInfinity) {
  std::vector<float> logits = {0.0f, -INFINITY, 0.0f}, out(3);
  log_softmax(logits, out);
  EXPECT_NEAR(out[0], -std::log(2.0), 1e-7);
  EXPECT_TRUE(std::isinf(out[1]) && out[1] < 0);
}

TEST(Logprobs, TopNDescendingTiesByLowerId) {
  std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.0f, 3.0f};
  const double lse = std::log(std::exp(1.0) + 3 * std::exp(3.0) + std::exp(2.0));
  const PositionLogprobs pos = position_logprobs(logits, 0, 4);
  EXPECT_EQ(pos.token.id, 0);
  EXPECT_NEAR(pos.token.logprob, 1.0 - lse, 1e-6);
  ASSERT_EQ(pos.top.size(), 4u);
  const int32_t ids[] = {1, 2, 4, 3};
  const double values[] = {3.0, 3.0, 3.0, 2.0};
  for (size_t r = 0; r < 4; ++r) {
    EXPECT_EQ(pos.top[r].id, ids[r]) << "rank " << r;
    EXPECT_NEAR(pos.top[r].logprob, values[r] - lse, 1e-6) << "rank " << r;
  }
}

TEST(Logprobs, TopNIsClampedToTheVocabularyAndMayBeEmpty) {
  std::vector<float> logits = {0.5f, -0.5f};
  EXPECT_EQ(top_logprobs(logits, log_sum_exp(logits), 10).size(), 2u);
  EXPECT_TRUE(top_logprobs(logits, log_sum_exp(logits), 0).empty());
  EXPECT_THROW(position_logprobs(logits, 2, 1), Error);
}

}  // namespace
}  // namespace herd
