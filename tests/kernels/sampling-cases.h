// Sampling cases shared by the sampling kernel's tests (on the emulated device and on a GPU): random
// logits rows with ties, and the comparison of each picked token with the host's sampler chain
// (sampling/sampler.h, itself checked against transformers' logits processors) and logprobs. The
// device selects where the host sorts, and sums fixed-point masses where the host sums floats in
// double, so a draw u within 1e-6 of a boundary of the host's cumulative distribution may land on
// the neighbouring token; anything else fails.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "sampling/logprobs.h"
#include "sampling/sampler.h"

namespace herd::sampling_cases {

struct Case {
  SamplingParams params;
  int row;                // which logits row
  double u;
  int n_top;
  std::vector<int32_t> prompt, generated;
  int32_t score_token = -1;  // >= 0: a prompt token's score, nothing picked
};

// Random logits with ties: repeated values (equal logits, so equal probabilities) in every row.
inline std::vector<float> random_rows(int n_rows, int n_vocab, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.f, 3.f);
  std::vector<float> rows(size_t(n_rows * n_vocab));
  for (float& v : rows) v = normal(rng);
  std::uniform_int_distribution<int> pick(0, n_vocab - 1);
  for (int r = 0; r < n_rows; ++r) {
    float* row = rows.data() + size_t(r) * size_t(n_vocab);
    const float top = row[pick(rng)] = 9.f;  // a clear maximum, then ties near it and in the bulk
    for (int i = 0; i < 6; ++i) row[pick(rng)] = top - 0.5f;
    for (int i = 0; i < 20; ++i) row[pick(rng)] = row[pick(rng)];
  }
  return rows;
}

inline SamplingParams params(float temperature, int32_t top_k = 0, float top_p = 1.f, float min_p = 0.f) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  return p;
}

// The host's pick for a case, and the distance from u to the nearest boundary of the cumulative
// distribution that separates it from `other` (0 when other is not a kept token at all).
struct HostPick {
  int32_t id;
  double margin;
};
inline HostPick host_pick(const std::vector<float>& logits, int n_vocab, const Case& c, int32_t other) {
  Sampler s(c.params);
  const std::span<const float> row(logits.data() + size_t(c.row) * size_t(n_vocab), size_t(n_vocab));
  const std::span<const TokenProb> dist = s.distribution(row, c.prompt, c.generated);
  const int32_t id = c.params.greedy() ? dist[0].id : Sampler::pick(dist, c.u);
  double cum = 0.0, margin = 0.0;
  for (const TokenProb& t : dist) {
    const double lo = cum;
    cum += t.p;
    if (t.id == other) margin = c.u < lo ? lo - c.u : c.u >= cum ? c.u - cum : 0.0;
  }
  return {id, margin};
}

// Each token picked (out[i] for cases[i]) against the host's pick and logprobs.
inline void expect_host_picks(const std::vector<float>& logits, int n_vocab, const std::vector<Case>& cases,
                              const std::vector<SampledToken>& out) {
  ASSERT_EQ(out.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const std::span<const float> row(logits.data() + size_t(c.row) * size_t(n_vocab), size_t(n_vocab));
    if (c.score_token >= 0) {
      EXPECT_EQ(out[i].id, c.score_token) << "case " << i;
      EXPECT_NEAR(out[i].logprob, position_logprobs(row, c.score_token, 0).token.logprob, 2e-5f) << "case " << i;
      continue;
    }
    const HostPick host = host_pick(logits, n_vocab, c, out[i].id);
    const std::string what = "case " + std::to_string(i) + ": T " + std::to_string(c.params.temperature) + " top_k " +
                             std::to_string(c.params.top_k) + " top_p " + std::to_string(c.params.top_p) + " min_p " +
                             std::to_string(c.params.min_p) + " u " + std::to_string(c.u);
    if (out[i].id != host.id) {
      // Only a draw at a boundary the two roundings place differently may differ.
      EXPECT_TRUE(out[i].id >= 0 && host.margin > 0.0 && host.margin < 1e-6)
          << what << ": device " << out[i].id << ", host " << host.id << " (margin " << host.margin << ")";
    }
    if (c.n_top == 0 || out[i].id < 0) continue;
    const PositionLogprobs lp = position_logprobs(row, out[i].id, c.n_top);
    EXPECT_NEAR(out[i].logprob, lp.token.logprob, 2e-5f) << what;
    ASSERT_EQ(lp.top.size(), size_t(std::min(c.n_top, n_vocab))) << what;
    ASSERT_EQ(out[i].top.size(), lp.top.size()) << what;
    for (size_t j = 0; j < lp.top.size(); ++j) {
      EXPECT_EQ(out[i].top[j].first, lp.top[j].id) << what << " top " << j;
      EXPECT_NEAR(out[i].top[j].second, lp.top[j].logprob, 2e-5f) << what << " top " << j;
    }
  }
}

}  // namespace herd::sampling_cases
