// PenaltyTokens: the distinct ids of prompt and output, ascending, each with its count in the
// output alone, step after step (the output grows; the prompt's ids are sorted once).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "sampling/penalty-tokens.h"

namespace herd {
namespace {

// The same lists from a map: every id of either, counted in the output only.
void expect_lists(const PenaltyTokens& pt, const std::vector<int32_t>& prompt, const std::vector<int32_t>& generated) {
  std::map<int32_t, int32_t> want;
  for (int32_t id : prompt) want.emplace(id, 0);
  for (int32_t id : generated) ++want[id];
  std::vector<int32_t> ids, counts;
  for (auto [id, c] : want) ids.push_back(id), counts.push_back(c);
  EXPECT_EQ(std::vector<int32_t>(pt.ids().begin(), pt.ids().end()), ids);
  EXPECT_EQ(std::vector<int32_t>(pt.counts().begin(), pt.counts().end()), counts);
  EXPECT_EQ(pt.list().ids.size(), ids.size());
}

TEST(PenaltyTokens, ListsEveryDistinctIdWithItsOutputCount) {
  const std::vector<int32_t> prompt = {5, 3, 5, 9, 0};
  PenaltyTokens pt(prompt);
  pt.update({});
  expect_lists(pt, prompt, {});
  const std::vector<int32_t> generated = {9, 9, 2, 11, 2, 9};
  pt.update(generated);
  expect_lists(pt, prompt, generated);
}

TEST(PenaltyTokens, GrowingOutputsOverRandomPrompts) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int32_t> id(0, 200);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<int32_t> prompt(size_t(trial * 7)), generated;
    for (int32_t& t : prompt) t = id(rng);
    PenaltyTokens pt(prompt);
    for (int step = 0; step < 30; ++step) {
      generated.push_back(id(rng));
      pt.update(generated);
      expect_lists(pt, prompt, generated);
    }
  }
}

}  // namespace
}  // namespace herd
