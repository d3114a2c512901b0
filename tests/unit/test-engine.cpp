// The engine through the public API: batching changes nothing, preemption loses nothing,
// cancelling frees blocks, requests that can never fit are refused up front.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "herd/herd.h"

namespace {

const std::string kModel = std::string(HERD_TEST_DATA) + "/models/gqa4-hd32-untied-llama3";

std::vector<int32_t> reference_ids() {
  std::ifstream f(std::string(HERD_TEST_DATA) + "/reference/gqa4-hd32-untied-llama3.json");
  return nlohmann::json::parse(f)["input_ids"].get<std::vector<int32_t>>();
}

herd::EngineOptions cpu(int64_t kv_memory = 0) {
  herd::EngineOptions o;
  o.device = "cpu";
  o.n_threads = 2;
  o.kv_memory = kv_memory;
  return o;
}

std::unique_ptr<herd::Engine> load(const herd::EngineOptions& o) {
  std::unique_ptr<herd::Engine> e;
  const herd::Status s = herd::Engine::load(kModel, o, &e);
  EXPECT_TRUE(s) << s.message();
  return e;
}

// Prompts of different lengths cut from the reference ids.
std::vector<herd::GenerateRequest> requests(int n, int max_tokens) {
  const auto ids = reference_ids();
  std::vector<herd::GenerateRequest> out;
  for (int i = 0; i < n; ++i) {
    herd::GenerateRequest r;
    r.prompt.assign(ids.begin() + i % 7, ids.begin() + i % 7 + 5 + (i * 3) % 17);
    r.max_tokens = max_tokens;
    r.ignore_eos = true;  // fixed lengths, so that preemption has to happen mid-generation
    out.push_back(r);
  }
  return out;
}

// Each request alone, through the single-sequence Model API (an independent path: no scheduler).
std::vector<int32_t> alone(herd::Model& m, const herd::GenerateRequest& r) {
  std::vector<int32_t> out;
  std::vector<int32_t> tokens = r.prompt;
  for (int i = 0; i < r.max_tokens; ++i) {
    std::vector<float> logits;
    EXPECT_TRUE(m.logits(tokens, false, &logits));
    const int32_t tok = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(tok);
    tokens.push_back(tok);
  }
  return out;
}

std::vector<std::vector<int32_t>> run_together(herd::Engine& e, const std::vector<herd::GenerateRequest>& rs) {
  std::vector<herd::RequestId> ids(rs.size());
  for (size_t i = 0; i < rs.size(); ++i) EXPECT_TRUE(e.submit(rs[i], &ids[i]));
  std::vector<std::vector<int32_t>> out(rs.size());
  for (size_t i = 0; i < rs.size(); ++i) {
    herd::Event ev;
    while (e.next_event(ids[i], &ev)) {
      if (ev.type == herd::Event::Type::token) out[i].push_back(ev.token);
      else EXPECT_EQ(ev.finish_reason, herd::FinishReason::length);
    }
  }
  return out;
}

TEST(Engine, ManyPromptsTogetherEqualEachAlone) {
  const auto rs = requests(6, 12);
  herd::ModelOptions mo;
  mo.device = "cpu";
  std::unique_ptr<herd::Model> model;
  ASSERT_TRUE(herd::Model::load(kModel, mo, &model));
  auto e = load(cpu());
  const auto together = run_together(*e, rs);
  for (size_t i = 0; i < rs.size(); ++i) EXPECT_EQ(together[i], alone(*model, rs[i])) << "request " << i;
  EXPECT_EQ(e->stats().n_preemptions, 0);
}

TEST(Engine, PreemptionUnderAnEightBlockBudgetLosesNothing) {
  const auto rs = requests(20, 40);  // each needs at most 61 tokens = 4 blocks: fits alone
  herd::ModelOptions mo;
  mo.device = "cpu";
  std::unique_ptr<herd::Model> model;
  ASSERT_TRUE(herd::Model::load(kModel, mo, &model));
  // 8 blocks of 16 tokens at 512 bytes per token (2 layers x 1 KV head x 32 x f32 x K,V).
  auto e = load(cpu(8 * 16 * 512));
  ASSERT_EQ(e->stats().kv_blocks_total, 8);
  ASSERT_EQ(e->stats().kv_bytes_per_token, 512);
  const auto together = run_together(*e, rs);
  for (size_t i = 0; i < rs.size(); ++i) EXPECT_EQ(together[i], alone(*model, rs[i])) << "request " << i;
  const auto st = e->stats();
  EXPECT_GT(st.n_preemptions, 0);
  EXPECT_EQ(st.kv_blocks_free, st.kv_blocks_total) << "blocks leaked";
}

TEST(Engine, CancelEndsTheRequestAndFreesItsBlocks) {
  auto e = load(cpu());
  herd::GenerateRequest r = requests(1, 1000)[0];
  herd::RequestId id;
  ASSERT_TRUE(e->submit(r, &id));
  herd::Event ev;
  ASSERT_TRUE(e->next_event(id, &ev));
  EXPECT_EQ(ev.type, herd::Event::Type::token);
  e->cancel(id);
  while (ev.type != herd::Event::Type::finished) ASSERT_TRUE(e->next_event(id, &ev));
  EXPECT_EQ(ev.finish_reason, herd::FinishReason::cancelled);
  EXPECT_LT(ev.usage.completion_tokens, 1000);
  EXPECT_FALSE(e->next_event(id, &ev));  // the stream is over
  EXPECT_EQ(e->stats().kv_blocks_free, e->stats().kv_blocks_total);
}

TEST(Engine, StopsAtTheModelsEndOfSequenceId) {
  // With these prompt ids, the f32 reference's greedy continuation reaches eos id 2 at step 5.
  std::ifstream f(std::string(HERD_TEST_DATA) + "/reference/mha-hd64-untied.json");
  const auto j = nlohmann::json::parse(f);
  std::unique_ptr<herd::Engine> e;
  ASSERT_TRUE(herd::Engine::load(std::string(HERD_TEST_DATA) + "/models/mha-hd64-untied", cpu(), &e));
  ASSERT_EQ(e->info().eos_ids, std::vector<int32_t>{2});
  herd::GenerateRequest r;
  r.prompt = j["input_ids"].get<std::vector<int32_t>>();
  r.max_tokens = 16;
  herd::GenerateResult res;
  ASSERT_TRUE(e->generate(r, &res));
  const auto want = j["greedy_f32"].get<std::vector<int32_t>>();
  ASSERT_EQ(want[4], 2);
  EXPECT_EQ(res.ids, std::vector<int32_t>(want.begin(), want.begin() + 5));
  EXPECT_EQ(res.finish_reason, herd::FinishReason::stop);
  EXPECT_EQ(res.usage.prompt_tokens, 64);
  EXPECT_EQ(res.usage.completion_tokens, 5);
}

TEST(Engine, RefusesWhatCanNeverFit) {
  auto e = load(cpu(8 * 16 * 512));  // 128 tokens of KV
  herd::RequestId id;
  herd::GenerateRequest r;
  r.prompt.assign(100, 5);
  r.max_tokens = 29;
  auto s = e->submit(r, &id);
  EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
  EXPECT_NE(s.message().find("exceed the KV cache of 128 tokens; raise --kv-memory"), std::string::npos) << s.message();
  r.max_tokens = 28;
  EXPECT_TRUE(e->submit(r, &id));

  auto big = load(cpu());
  r.prompt.assign(2000, 5);
  r.max_tokens = 49;  // the fixture's context is 2048
  s = big->submit(r, &id);
  EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
  EXPECT_NE(s.message().find("exceed the model's context of 2048 tokens"), std::string::npos) << s.message();
  r.prompt = {5, 300};
  EXPECT_NE(big->submit(r, &id).message().find("token id 300"), std::string::npos);
  r.prompt.clear();
  r.text = "hello";
  EXPECT_NE(big->submit(r, &id).message().find("no tokenizer"), std::string::npos);
}

}  // namespace
