// Scoring arithmetic against values computed by hand (docs/eval.md).
#include <gtest/gtest.h>

#include "metrics.h"

namespace herd_cli::eval {
namespace {

TEST(Metrics, PassAtKIsTheUnbiasedEstimator) {
  // 1 - C(n-c, k) / C(n, k)
  EXPECT_DOUBLE_EQ(pass_at_k(5, 2, 1), 0.4);                // 1 - 3/5
  EXPECT_DOUBLE_EQ(pass_at_k(5, 2, 3), 0.9);                // 1 - C(3,3)/C(5,3) = 1 - 1/10
  EXPECT_DOUBLE_EQ(pass_at_k(10, 3, 5), 1.0 - 21.0 / 252);  // C(7,5) = 21, C(10,5) = 252
  EXPECT_DOUBLE_EQ(pass_at_k(5, 0, 1), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(5, 5, 1), 1.0);
  EXPECT_DOUBLE_EQ(pass_at_k(5, 3, 3), 1.0);  // n - c < k: every 3 of 5 holds a pass
  EXPECT_DOUBLE_EQ(pass_at_k(1, 1, 1), 1.0);
}

TEST(Metrics, MajorityVoteTiesGoToTheFirstSeen) {
  using V = std::vector<std::optional<std::string>>;
  EXPECT_EQ(majority_vote(V{"a", "b", "b", "a"}), "a");  // 2 : 2, "a" came first
  EXPECT_EQ(majority_vote(V{"b", "a", "a", "b"}), "b");
  EXPECT_EQ(majority_vote(V{"b", "a", "a"}), "a");       // a majority beats the first seen
  EXPECT_EQ(majority_vote(V{"c", "a", "b"}), "c");
  EXPECT_EQ(majority_vote(V{std::nullopt, "x", std::nullopt}), "x");  // no answer, no vote
  EXPECT_EQ(majority_vote(V{std::nullopt, std::nullopt}), std::nullopt);
  EXPECT_EQ(majority_vote(V{}), std::nullopt);
}

TEST(Metrics, Utf8LengthCountsCharacters) {
  EXPECT_EQ(utf8_length("Paris"), 5u);
  EXPECT_EQ(utf8_length("h\xC3\xA9llo"), 5u);              // é is 2 bytes
  EXPECT_EQ(utf8_length("\xE6\x97\xA5\xE6\x9C\xAC"), 2u);  // 日本
  EXPECT_EQ(utf8_length("\xF0\x9F\x98\x80!"), 2u);        // an emoji is 4 bytes
}

TEST(Metrics, AccAndAccNormDisagreeOnLength) {
  // "ab" at -4 is more likely in total; per character "abcdef" (-6 / 6 = -1) beats it (-4 / 2 = -2).
  const ChoicePrediction p = predict_choice({-4.0, -6.0}, {"ab", "abcdef"});
  EXPECT_EQ(p.acc, 0);
  EXPECT_EQ(p.acc_norm, 1);
  // Lengths in characters, not bytes: "é" (1 char) at -3 is -3 per char, "ab" at -4 is -2.
  const ChoicePrediction q = predict_choice({-3.0, -4.0}, {"\xC3\xA9", "ab"});
  EXPECT_EQ(q.acc, 0);
  EXPECT_EQ(q.acc_norm, 1);
  const ChoicePrediction tie = predict_choice({-1.0, -1.0, -2.0}, {"a", "a", "a"});
  EXPECT_EQ(tie.acc, 0);  // ties go to the first, as numpy's argmax
  EXPECT_EQ(tie.acc_norm, 0);
}

TEST(Metrics, MacroAndMicroAverages) {
  // Subject A: 3 of 4 right (0.75); subject B: 0 of 1 (0). Micro: 3/5 = 0.6; macro: (0.75 + 0) / 2 = 0.375.
  std::vector<ItemMetrics> items = {
      {"mmlu", "A", {{"acc", 1}}}, {"mmlu", "A", {{"acc", 1}}}, {"mmlu", "B", {{"acc", 0}}},
      {"mmlu", "A", {{"acc", 1}}}, {"mmlu", "A", {{"acc", 0}}}, {"arc", "", {{"acc", 1}, {"acc_norm", 0}}},
      {"arc", "", {{"acc", 0}, {"acc_norm", 1}}}, {"arc", "", {{"acc", 0}, {"acc_norm", 1}}}};
  const std::vector<TaskScores> t = summarize(items);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].task, "mmlu");  // in order of first appearance
  EXPECT_EQ(t[0].micro.n, 5);
  EXPECT_DOUBLE_EQ(t[0].micro.mean.at("acc"), 0.6);
  EXPECT_DOUBLE_EQ(t[0].macro.at("acc"), 0.375);
  EXPECT_EQ(t[0].subjects.at("A").n, 4);
  EXPECT_DOUBLE_EQ(t[0].subjects.at("A").mean.at("acc"), 0.75);
  EXPECT_DOUBLE_EQ(t[0].subjects.at("B").mean.at("acc"), 0.0);
  // No subjects: the micro average only.
  EXPECT_EQ(t[1].task, "arc");
  EXPECT_TRUE(t[1].subjects.empty());
  EXPECT_TRUE(t[1].macro.empty());
  EXPECT_DOUBLE_EQ(t[1].micro.mean.at("acc"), 1.0 / 3);
  EXPECT_DOUBLE_EQ(t[1].micro.mean.at("acc_norm"), 2.0 / 3);
}

TEST(Metrics, AMetricIsAveragedOverTheItemsThatHaveIt) {
  // maj@4 exists only where n = 4: its mean is over those two items, em's over all three.
  const auto t = summarize({{"g", "", {{"em", 1}, {"maj@4", 1}}}, {"g", "", {{"em", 0}, {"maj@4", 0}}}, {"g", "", {{"em", 1}}}});
  EXPECT_DOUBLE_EQ(t[0].micro.mean.at("em"), 2.0 / 3);
  EXPECT_DOUBLE_EQ(t[0].micro.mean.at("maj@4"), 0.5);
}

}  // namespace
}  // namespace herd_cli::eval
