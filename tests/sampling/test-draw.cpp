// The draw: its frequencies match the distribution, and a seed fixes the sequence whatever else
// runs beside it.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <vector>

#include "sampling/sampler.h"

namespace herd {
namespace {

// Probabilities 0.1 0.5 0.05 0.2 0.15, out of order so that the draw walks a sorted and an
// unsorted candidate list alike.
const std::vector<float> k_five = {std::log(0.1f), std::log(0.5f), std::log(0.05f), std::log(0.2f),
                                   std::log(0.15f)};
constexpr std::array<double, 5> k_five_p = {0.1, 0.5, 0.05, 0.2, 0.15};

SamplingParams seeded(uint64_t seed) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = seed;
  return p;
}

std::vector<int32_t> draws(Sampler& s, const std::vector<float>& logits, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(s.sample(logits, {}, {}));
  return out;
}

TEST(Draw, FrequenciesMatchTheDistribution) {
  // Pearson's chi-square with 4 degrees of freedom; 40 is far past the 1e-7 tail (about 33), so
  // only a wrong draw fails it, and the fixed seed makes it deterministic anyway.
  constexpr int n = 200000;
  Sampler s(seeded(12345));
  std::array<int, 5> counts{};
  for (int32_t id : draws(s, k_five, n)) ++counts[size_t(id)];
  double chi2 = 0.0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double expected = n * k_five_p[i];
    chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  EXPECT_LT(chi2, 40.0);
}

TEST(Draw, TopPNeverLeavesTheNucleus) {
  SamplingParams p = seeded(99);
  p.top_p = 0.75f;  // ids 1, 3, 4 (0.5 0.2 0.15)
  Sampler s(p);
  std::array<int, 5> counts{};
  for (int32_t id : draws(s, k_five, 20000)) ++counts[size_t(id)];
  EXPECT_EQ(counts[0], 0);
  EXPECT_EQ(counts[2], 0);
  // Renormalised 0.588 0.235 0.176: every kept token is drawn.
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[3], 0);
  EXPECT_GT(counts[4], 0);
}

TEST(Draw, TopKAndMinPNeverLeaveTheirSets) {
  SamplingParams p = seeded(5);
  p.top_k = 2;
  Sampler k(p);
  for (int32_t id : draws(k, k_five, 5000)) EXPECT_TRUE(id == 1 || id == 3) << id;
  p.top_k = 0;
  p.min_p = 0.35f;
  Sampler m(p);
  for (int32_t id : draws(m, k_five, 5000)) EXPECT_TRUE(id == 1 || id == 3) << id;
}

TEST(Draw, SameSeedSameSequence) {
  Sampler a(seeded(7)), b(seeded(7)), c(seeded(8));
  const std::vector<int32_t> seq = draws(a, k_five, 500);
  EXPECT_EQ(draws(b, k_five, 500), seq);
  EXPECT_NE(draws(c, k_five, 500), seq);
}

TEST(Draw, SequenceDoesNotDependOnOtherRequests) {
  // A request alone, then the same request interleaved with 15 others stepping between its draws.
  SamplingParams p = seeded(2024);
  p.top_p = 0.9f;
  Sampler alone(p);
  const std::vector<int32_t> expected = draws(alone, k_five, 300);

  Sampler mine(p);
  std::vector<Sampler> others;
  for (uint64_t i = 0; i < 15; ++i) others.emplace_back(seeded(i));
  std::vector<int32_t> got;
  for (int step = 0; step < 300; ++step) {
    for (size_t i = 0; i < others.size(); i += 2) others[i].sample(k_five, {}, {});
    got.push_back(mine.sample(k_five, {}, {}));
    for (size_t i = 1; i < others.size(); i += 2) others[i].sample(k_five, {}, {});
  }
  EXPECT_EQ(got, expected);
}

TEST(Draw, LargeVocabularyTopKStaysInTheTopK) {
  // Llama 3's vocabulary size: the top-k path selects without sorting the whole row.
  std::vector<float> logits(128256);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float((i * 7919) % 1000) * 0.01f;
  SamplingParams p = seeded(1);
  p.top_k = 3;  // the three ids with (i * 7919) % 1000 == 999, the lowest ones first
  Sampler s(p);
  for (int32_t id : draws(s, logits, 200)) {
    EXPECT_EQ((int64_t(id) * 7919) % 1000, 999) << id;
    EXPECT_LT(id, 3000) << "a later tie was kept over a lower id";
  }
}

}  // namespace
}  // namespace herd
