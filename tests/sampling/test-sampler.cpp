// Each stage of the chain against values computed by hand on small rows.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/check.h"
#include "sampling/sampler.h"

namespace herd {
namespace {

SamplingParams sampling(float temperature = 1.0f) {
  SamplingParams p;
  p.temperature = temperature;
  return p;
}

std::vector<float> dense(std::span<const TokenProb> dist, size_t n_vocab) {
  std::vector<float> p(n_vocab, 0.0f);
  for (const TokenProb& t : dist) p[size_t(t.id)] = t.p;
  return p;
}

// The chain's distribution over `logits` equals exactly `expected` (0 where dropped).
void expect_probs(Sampler& s, const std::vector<float>& logits, const std::vector<double>& expected,
                  std::vector<int32_t> prompt = {}, std::vector<int32_t> generated = {}) {
  std::vector<float> got = dense(s.distribution(logits, prompt, generated), logits.size());
  for (size_t i = 0; i < logits.size(); ++i)
    EXPECT_NEAR(got[i], expected[i], 1e-6) << "token " << i;
}

// The distribution is the softmax of `penalised` (the logits the penalties should have produced):
// checked through the ratios p_i / p_0 = exp(penalised_i - penalised_0), independent of the sum.
void expect_logits(Sampler& s, const std::vector<float>& logits,
                   const std::vector<double>& penalised, std::vector<int32_t> prompt,
                   std::vector<int32_t> generated) {
  std::vector<float> got = dense(s.distribution(logits, prompt, generated), logits.size());
  for (size_t i = 1; i < logits.size(); ++i)
    EXPECT_NEAR(std::log(double(got[i]) / got[0]), penalised[i] - penalised[0], 1e-5)
        << "token " << i;
}

// Probabilities 0.1 0.5 0.05 0.2 0.15 (ids 0-4), out of order so that sorting matters.
const std::vector<float> k_five = {std::log(0.1f), std::log(0.5f), std::log(0.05f), std::log(0.2f),
                                   std::log(0.15f)};

TEST(Penalties, RepetitionDividesPositiveMultipliesNegativeOncePerToken) {
  SamplingParams p = sampling();
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  // Token 0 (positive) in the prompt, token 1 (negative) twice in the output, 2 and 3 unseen.
  expect_logits(s, {2.0f, -1.0f, 0.5f, 3.0f}, {1.0, -2.0, 0.5, 3.0}, {0}, {1, 1});
}

TEST(Penalties, FrequencyAndPresenceCountOnlyGeneratedTokens) {
  SamplingParams p = sampling();
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  Sampler s(p);
  // Token 1 three times: 3 * 0.5 + 0.25; token 2 once: 0.5 + 0.25; token 3 only in the prompt.
  expect_logits(s, {0.0f, 0.0f, 0.0f, 0.0f}, {0.0, -1.75, -0.75, 0.0}, {3, 3}, {1, 2, 1, 1});
}

TEST(Penalties, NegativeFrequencyPenaltyRewardsRepeats) {
  SamplingParams p = sampling();
  p.frequency_penalty = -1.0f;
  Sampler s(p);
  expect_logits(s, {0.0f, 0.0f}, {0.0, 2.0}, {}, {1, 1});
}

TEST(Penalties, RepetitionThenFrequency) {
  SamplingParams p = sampling();
  p.repetition_penalty = 2.0f;
  p.frequency_penalty = 1.0f;
  Sampler s(p);
  // Token 1: 3 / 2 - 1 = 0.5 (frequency first would give (3 - 1) / 2 = 1).
  expect_logits(s, {0.0f, 3.0f}, {0.0, 0.5}, {}, {1});
}

TEST(Temperature, DividesLogitsAfterPenalties) {
  SamplingParams p = sampling(0.5f);
  Sampler plain(p);
  expect_logits(plain, {1.0f, 2.0f, 3.0f}, {2.0, 4.0, 6.0}, {}, {});
  p.frequency_penalty = 1.0f;
  Sampler penalised(p);
  // (0 - 1) / 0.5 = -2; temperature first would give 0 / 0.5 - 1 = -1.
  expect_logits(penalised, {0.0f, 0.0f}, {-2.0, 0.0}, {}, {0});
}

TEST(Temperature, TinyTemperatureStaysFinite) {
  Sampler s(sampling(1e-30f));
  expect_probs(s, {1.0f, 1.5f, -3.0f}, {0.0, 1.0, 0.0});
}

TEST(TopK, KeepsTheKLargest) {
  SamplingParams p = sampling();
  p.top_k = 2;
  Sampler s(p);
  // e^5 / (e^5 + e^4) = 1 / (1 + e^-1).
  expect_probs(s, {1.0f, 3.0f, 2.0f, 5.0f, 4.0f}, {0, 0, 0, 0.7310585786, 0.2689414214});
}

TEST(TopK, TieAtTheBoundaryKeepsLowerIds) {
  SamplingParams p = sampling();
  p.top_k = 2;
  Sampler s(p);
  // e^3 / (e^3 + e^2) and e^2 / (e^3 + e^2); token 2 ties with token 1 and loses.
  expect_probs(s, {3.0f, 2.0f, 2.0f, 0.0f}, {0.7310585786, 0.2689414214, 0, 0});
}

TEST(TopK, LargerThanVocabularyKeepsAll) {
  SamplingParams p = sampling();
  p.top_k = 100;
  Sampler s(p);
  expect_probs(s, k_five, {0.1, 0.5, 0.05, 0.2, 0.15});
}

TEST(TopP, SmallestSetReachingTopP) {
  SamplingParams p = sampling();
  // Sorted: 0.5, 0.2, 0.15, 0.1, 0.05; cumulative 0.5, 0.7, 0.85, 0.95, 1.
  p.top_p = 0.6f;
  Sampler two(p);
  expect_probs(two, k_five, {0, 0.5 / 0.7, 0, 0.2 / 0.7, 0});
  p.top_p = 0.75f;
  Sampler three(p);
  expect_probs(three, k_five, {0, 0.5 / 0.85, 0, 0.2 / 0.85, 0.15 / 0.85});
  p.top_p = 0.3f;
  Sampler one(p);
  expect_probs(one, k_five, {0, 1, 0, 0, 0});
}

TEST(TopP, SeesTheDistributionTopKLeft) {
  SamplingParams p = sampling();
  p.top_k = 2;     // 0.5 and 0.2, renormalised: 0.714 and 0.286
  p.top_p = 0.6f;  // 0.714 >= 0.6 alone (top-p first would keep both)
  Sampler s(p);
  expect_probs(s, k_five, {0, 1, 0, 0, 0});
}

TEST(MinP, DropsBelowAFractionOfTheLargest) {
  SamplingParams p = sampling();
  p.min_p = 0.25f;  // threshold 0.125: 0.5, 0.2 and 0.15 stay
  Sampler three(p);
  expect_probs(three, k_five, {0, 0.5 / 0.85, 0, 0.2 / 0.85, 0.15 / 0.85});
  p.min_p = 0.35f;  // threshold 0.175
  Sampler two(p);
  expect_probs(two, k_five, {0, 0.5 / 0.7, 0, 0.2 / 0.7, 0});
}

TEST(MinP, AfterTopP) {
  SamplingParams p = sampling();
  p.top_p = 0.9f;   // keeps 0.5 0.2 0.15 0.1
  p.min_p = 0.25f;  // then drops 0.1 (< 0.125)
  Sampler s(p);
  expect_probs(s, k_five, {0, 0.5 / 0.85, 0, 0.2 / 0.85, 0.15 / 0.85});
}

TEST(Greedy, TemperatureZeroIsTheFirstArgmax) {
  Sampler s(sampling(0.0f));
  std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.0f};
  EXPECT_TRUE(s.params().greedy());
  EXPECT_EQ(s.sample(logits, {}, {}), 1);
  expect_probs(s, logits, {0, 1, 0, 0});
}

TEST(Greedy, PenaltiesStillApply) {
  SamplingParams p = sampling(0.0f);
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  std::vector<float> logits = {1.0f, 3.0f, 2.9f};
  std::vector<int32_t> prompt = {1};
  EXPECT_EQ(s.sample(logits, prompt, {}), 2);  // 3 / 2 = 1.5 < 2.9
}

TEST(Params, DefaultsAreGreedyAndEveryBadValueIsReported) {
  EXPECT_TRUE(SamplingParams{}.greedy());
  SamplingParams p;
  p.temperature = -1.0f;
  p.top_k = -2;
  p.top_p = 0.0f;
  p.min_p = 1.5f;
  p.repetition_penalty = 0.0f;
  p.presence_penalty = NAN;
  try {
    validate(p);
    FAIL() << "accepted bad parameters";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_input);
    const std::string msg = e.what();
    for (const char* name :
         {"temperature", "top_k", "top_p", "min_p", "repetition_penalty", "presence_penalty"})
      EXPECT_NE(msg.find(name), std::string::npos) << name << " missing from: " << msg;
    EXPECT_EQ(msg.find("frequency_penalty"), std::string::npos) << msg;
  }
}

TEST(Params, OutOfRangeTokenIdIsABugAndChangesNothing) {
  SamplingParams p = sampling();
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  std::vector<float> logits = {2.0f, 1.0f};
  std::vector<int32_t> bad = {0, 2};
  EXPECT_THROW(s.sample(logits, bad, {}), Error);
  // Token 0 was not left marked as seen: the next step penalises it (2 / 2 = 1).
  expect_logits(s, logits, {1.0, 1.0}, {0}, {});
}

}  // namespace
}  // namespace herd
