// The sampling kernel (kernels/sampling-kernel.cuh) run on the CPU through emulated-device.h,
// against the host's sampler chain (sampling-cases.h): the same logits, parameters, penalties and
// draw u must give the same token, and the same logprobs as sampling/logprobs.h. The same cases run
// through the CUDA backend on a device in cuda-backend-test.cpp (label gpu).
#include "emulated-device.h"
// (the emulation first)
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/sampling-kernel.cuh"
#include "sampling-cases.h"
#include "sampling/penalty-tokens.h"

namespace herd {
namespace {

namespace k = kernels;

using namespace sampling_cases;

// Runs the kernel on every case; returns its outputs.
std::vector<k::SampleOut> run_kernel(const std::vector<float>& logits, int n_vocab, const std::vector<Case>& cases) {
  std::vector<k::SampleRow> rows;
  std::vector<int32_t> ids, counts;
  for (const Case& c : cases) {
    k::SampleRow r{};
    r.row = c.row;
    r.temperature = c.params.temperature;
    r.top_k = c.params.top_k;
    r.top_p = c.params.top_p;
    r.min_p = c.params.min_p;
    r.repetition_penalty = c.params.repetition_penalty;
    r.frequency_penalty = c.params.frequency_penalty;
    r.presence_penalty = c.params.presence_penalty;
    r.penalty_begin = int32_t(ids.size());
    if (c.params.penalised()) {
      PenaltyTokens pt(c.prompt);
      pt.update(c.generated);
      ids.insert(ids.end(), pt.ids().begin(), pt.ids().end());
      counts.insert(counts.end(), pt.counts().begin(), pt.counts().end());
    }
    r.penalty_end = int32_t(ids.size());
    r.n_top = c.n_top;
    r.score_token = c.score_token;
    r.u = c.u;
    rows.push_back(r);
  }
  ids.push_back(0), counts.push_back(0);  // never read: valid pointers when no case is penalised
  std::vector<float> work(cases.size() * size_t(n_vocab), NAN);
  std::vector<k::SampleOut> out(cases.size());
  for (k::SampleOut& o : out) o.id = -2;
  k::emu::launch(dim3(unsigned(cases.size())), k::sampling::kThreads, [&] {
    k::sampling::sample_kernel(logits.data(), n_vocab, n_vocab, rows.data(), ids.data(), counts.data(), work.data(),
                               out.data());
  });
  return out;
}

void check(const std::vector<float>& logits, int n_vocab, const std::vector<Case>& cases) {
  const std::vector<k::SampleOut> out = run_kernel(logits, n_vocab, cases);
  std::vector<SampledToken> got(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    got[i].id = out[i].id;
    got[i].logprob = out[i].logprob;
    if (cases[i].score_token >= 0) continue;
    for (int j = 0; j < std::min(cases[i].n_top, n_vocab); ++j)
      got[i].top.emplace_back(out[i].top_id[j], out[i].top_logprob[j]);
  }
  expect_host_picks(logits, n_vocab, cases, got);
}

// Every step of the chain alone and together, each with draws spread over [0, 1).
TEST(SamplingEmulated, EveryStepOfTheChainPicksTheHostsToken) {
  constexpr int kVocab = 1500, kRows = 3;
  std::mt19937 rng(7);
  const std::vector<float> logits = random_rows(kRows, kVocab, rng);
  const SamplingParams configs[] = {
      params(0.f),                  // greedy
      params(1.f),                  // temperature only: the draw walks ids in order
      params(0.7f, 40),             // top-k (ties at the boundary in some rows)
      params(1.3f, 0, 0.9f),        // top-p
      params(1.f, 0, 1.f, 0.05f),   // min-p alone: still in id order
      params(0.8f, 50, 0.8f, 0.02f),
      params(2.f, 7),               // a top-k cut inside the tied values below the maximum
      params(1e-30f),               // tiny temperature: one-hot, never NaN
  };
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<Case> cases;
  for (const SamplingParams& p : configs)
    for (int j = 0; j < 5; ++j) cases.push_back({p, j % kRows, j == 0 ? 0.0 : j == 4 ? 0.999999 : unit(rng), 0, {}, {}});
  check(logits, kVocab, cases);
}

TEST(SamplingEmulated, PenaltiesMatchTheHost) {
  constexpr int kVocab = 800, kRows = 2;
  std::mt19937 rng(11);
  const std::vector<float> logits = random_rows(kRows, kVocab, rng);
  std::uniform_int_distribution<int32_t> id(0, kVocab - 1);
  std::vector<int32_t> prompt(300), generated(60);
  for (int32_t& t : prompt) t = id(rng);
  for (int32_t& t : generated) t = id(rng) % 50;  // repeats: counts above 1
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<Case> cases;
  for (float rp : {1.f, 1.3f, 0.7f})
    for (auto [fp, pp] : {std::pair{0.f, 0.f}, {0.4f, 0.6f}, {-0.5f, 0.f}}) {
      SamplingParams p = params(0.9f, 0, 0.95f);
      p.repetition_penalty = rp, p.frequency_penalty = fp, p.presence_penalty = pp;
      if (!p.penalised()) continue;
      cases.push_back({p, 0, unit(rng), 0, prompt, generated});
      p.temperature = 0.f;  // greedy after penalties
      cases.push_back({p, 1, 0.0, 0, prompt, generated});
    }
  // A flat distribution swept by the draw: penalised tokens with negative logits are drawn too.
  SamplingParams flat = params(6.f);
  flat.repetition_penalty = 1.6f;
  for (int j = 0; j < 30; ++j) cases.push_back({flat, 1, (j + 0.5) / 30.0, 0, prompt, generated});
  check(logits, kVocab, cases);
}

TEST(SamplingEmulated, LogprobsOfTheRawRow) {
  constexpr int kVocab = 700;
  std::mt19937 rng(3);
  const std::vector<float> logits = random_rows(2, kVocab, rng);
  SamplingParams penalised = params(1.f, 30);
  penalised.repetition_penalty = 1.5f;  // changes the pick, not the logprobs of the raw row
  check(logits, kVocab,
        {{params(0.f), 0, 0.0, 1, {}, {}},
         {params(1.f), 1, 0.3, 5, {}, {}},
         {penalised, 0, 0.6, 20, {1, 2, 3, 4}, {2, 2}}});
  // More alternatives than tokens: every token, in order.
  const std::vector<float> small = random_rows(1, 12, rng);
  check(small, 12, {{params(0.f), 0, 0.0, 20, {}, {}}, {params(1.f, 0, 0.5f), 0, 0.4, 20, {}, {}}});
}

TEST(SamplingEmulated, TiesGoToTheLowerId) {
  constexpr int kVocab = 600;
  std::vector<float> logits(2 * kVocab, -1.f);
  logits[3] = logits[259] = 2.f;                        // row 0: tied maxima, one thread's both
  logits[kVocab + 5] = -0.f, logits[kVocab + 9] = 0.f;  // row 1: -0 and +0, equal on the host
  const std::vector<Case> cases = {
      {params(0.f), 0, 0.0, 0, {}, {}}, {params(1.f, 1), 0, 0.9, 0, {}, {}}, {params(0.f), 1, 0.0, 0, {}, {}},
      {params(1.f, 1), 1, 0.9, 0, {}, {}}, {params(1.f, 0, 0.003f), 1, 0.9, 0, {}, {}}};
  const std::vector<k::SampleOut> out = run_kernel(logits, kVocab, cases);
  EXPECT_EQ(out[0].id, 3);
  EXPECT_EQ(out[1].id, 3);
  EXPECT_EQ(out[2].id, 5);
  EXPECT_EQ(out[3].id, 5);
  EXPECT_EQ(out[4].id, 5);  // top-p's order among equal probabilities is by id too
  check(logits, kVocab, cases);
}

// Prompt scores: a given token's logprob under its row, nothing drawn; beside picks in one launch.
TEST(SamplingEmulated, ScoresAGivenToken) {
  constexpr int kVocab = 900;
  std::mt19937 rng(17);
  std::vector<float> logits = random_rows(3, kVocab, rng);
  std::vector<Case> cases;
  for (int32_t token : {0, 17, 450, kVocab - 1}) cases.push_back({params(0.f), token % 3, 0.0, 0, {}, {}, token});
  cases.push_back({params(1.f, 10), 1, 0.5, 3, {}, {}});
  check(logits, kVocab, cases);
  logits[kVocab + 3] = NAN;  // a scored row that is not finite scores nothing
  EXPECT_EQ(run_kernel(logits, kVocab, {{params(0.f), 1, 0.0, 0, {}, {}, 5}})[0].id, -1);
}

TEST(SamplingEmulated, NonFiniteRowsPickNothing) {
  constexpr int kVocab = 300;
  std::mt19937 rng(5);
  std::vector<float> logits = random_rows(3, kVocab, rng);
  logits[17] = NAN;
  logits[kVocab + 200] = INFINITY;
  logits[2 * kVocab + 5] = -INFINITY;
  const std::vector<k::SampleOut> out =
      run_kernel(logits, kVocab, {{params(0.f), 0, 0.0, 0, {}, {}}, {params(1.f, 5), 1, 0.5, 3, {}, {}},
                                  {params(1.f), 2, 0.5, 0, {}, {}}});
  EXPECT_EQ(out[0].id, -1);
  EXPECT_EQ(out[1].id, -1);
  EXPECT_EQ(out[2].id, -1);  // the host refuses a row with -inf too (all_finite)
}

// Draws from one row, many times: the kernel's tokens follow the distribution's frequencies
// exactly as the host's do (the same u gives the same token), so the histograms are equal.
TEST(SamplingEmulated, ManyDrawsFollowTheHost) {
  constexpr int kVocab = 64;
  std::mt19937 rng(13);
  const std::vector<float> logits = random_rows(1, kVocab, rng);
  std::vector<Case> cases;
  // Top-p in the probabilities' order; min-p in id order, flat enough that many tokens sit near its cut.
  for (const SamplingParams& p : {params(1.5f, 0, 0.97f), params(4.f, 0, 1.f, 0.3f)})
    for (int j = 0; j < 28; ++j) cases.push_back({p, 0, (j + 0.5) / 28.0, 0, {}, {}});
  check(logits, kVocab, cases);
}

}  // namespace
}  // namespace herd
