// Tokens sampled on the device (the CUDA backend's sample(), through the engine) against the same
// engine with HERD_CUDA_SAMPLING=off, where the host's sampler picks from the same CUDA logits rows
// with the same draws: every request's tokens and logprobs equal, over temperature, top-k, top-p,
// min-p, penalties, logprobs, prompt scores and forked samples, batched together. Skips without a
// device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "herd/herd.h"

namespace {

const std::string kModel = std::string(HERD_TEST_DATA) + "/models/gqa4-hd32-untied-llama3";

struct Output {
  std::vector<herd::Logprob> prompt;  // with prompt_logprobs
  std::vector<int32_t> ids;
  std::vector<float> logprobs;
  std::vector<std::vector<int32_t>> top_ids;
};

std::vector<herd::GenerateRequest> requests() {
  std::vector<herd::GenerateRequest> out;
  auto add = [&](float t, int32_t top_k, float top_p, float min_p, float rep, float freq, float pres, int logprobs,
                 int n_samples) {
    herd::GenerateRequest r;
    for (int i = 0; i < 9 + 5 * int(out.size()); ++i) r.prompt.push_back(int32_t((i * 37 + 11 * out.size()) % 256));
    r.max_tokens = 24;
    r.ignore_eos = true;
    r.sampling.temperature = t;
    r.sampling.top_k = top_k;
    r.sampling.top_p = top_p;
    r.sampling.min_p = min_p;
    r.sampling.repetition_penalty = rep;
    r.sampling.frequency_penalty = freq;
    r.sampling.presence_penalty = pres;
    r.sampling.seed = 1000 + out.size();
    r.sampling.logprobs = logprobs;
    r.n_samples = n_samples;
    out.push_back(r);
  };
  add(0.f, 0, 1.f, 0.f, 1.f, 0.f, 0.f, 0, 1);     // plain greedy beside the sampled ones
  add(1.f, 0, 1.f, 0.f, 1.f, 0.f, 0.f, 0, 1);     // temperature only
  add(0.8f, 20, 1.f, 0.f, 1.f, 0.f, 0.f, 3, 1);   // top-k, logprobs
  add(1.2f, 0, 0.9f, 0.05f, 1.f, 0.f, 0.f, 0, 3); // top-p and min-p, forked samples
  add(0.9f, 40, 0.95f, 0.f, 1.3f, 0.5f, 0.2f, 5, 1);  // every penalty
  add(0.f, 0, 1.f, 0.f, 1.5f, 0.f, 0.f, 2, 2);    // greedy after a penalty, forked
  add(0.7f, 0, 0.9f, 0.f, 1.f, 0.f, 0.f, 1, 1);   // and its prompt scored, beside the others
  out.back().prompt_logprobs = true;
  out.back().prompt_logprobs_from = 3;
  return out;
}

// Every sample of every request, submitted together so that they share steps.
std::vector<Output> run(bool device_sampling) {
  setenv("HERD_CUDA_SAMPLING", device_sampling ? "on" : "off", 1);
  herd::EngineOptions o;
  o.device = "cuda";
  std::unique_ptr<herd::Engine> e;
  const herd::Status s = herd::Engine::load(kModel, o, &e);
  EXPECT_TRUE(s) << s.message();
  unsetenv("HERD_CUDA_SAMPLING");
  if (!e) return {};
  std::vector<herd::RequestId> ids;
  for (const herd::GenerateRequest& r : requests()) {
    herd::RequestId id = 0;
    EXPECT_TRUE(e->submit(r, &id));
    for (int i = 0; i < r.n_samples; ++i) ids.push_back(id + herd::RequestId(i));
  }
  std::vector<Output> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    herd::Event ev;
    while (e->next_event(ids[i], &ev) && ev.type != herd::Event::Type::finished) {
      if (ev.type == herd::Event::Type::prompt) out[i].prompt = ev.prompt_logprobs;
      if (ev.type != herd::Event::Type::token) continue;
      out[i].ids.push_back(ev.token);
      out[i].logprobs.push_back(ev.logprob);
      std::vector<int32_t> top;
      for (const herd::Logprob& t : ev.top_logprobs) top.push_back(t.token);
      out[i].top_ids.push_back(top);
    }
    EXPECT_EQ(ev.type, herd::Event::Type::finished);
    EXPECT_TRUE(ev.error.empty()) << ev.error;
  }
  return out;
}

TEST(DeviceSampling, PicksTheHostsTokensFromTheSameLogits) {
  const auto devices = herd::available_devices();
  if (std::find(devices.begin(), devices.end(), "cuda") == devices.end()) GTEST_SKIP() << "no cuda device";
  const std::vector<Output> device = run(true), host = run(false);
  ASSERT_EQ(device.size(), host.size());
  for (size_t i = 0; i < device.size(); ++i) {
    EXPECT_EQ(device[i].ids, host[i].ids) << "sample " << i;
    EXPECT_EQ(device[i].top_ids, host[i].top_ids) << "sample " << i;
    ASSERT_EQ(device[i].prompt.size(), host[i].prompt.size()) << "sample " << i;
    for (size_t j = 0; j < device[i].prompt.size(); ++j) {
      EXPECT_EQ(device[i].prompt[j].token, host[i].prompt[j].token);
      EXPECT_NEAR(device[i].prompt[j].logprob, host[i].prompt[j].logprob, 2e-5f) << "sample " << i << " prompt " << j;
    }
    ASSERT_EQ(device[i].logprobs.size(), host[i].logprobs.size());
    for (size_t j = 0; j < device[i].logprobs.size(); ++j)
      EXPECT_NEAR(device[i].logprobs[j], host[i].logprobs[j], 2e-5f) << "sample " << i << " token " << j;
  }
}

}  // namespace
