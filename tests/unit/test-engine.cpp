// The engine through the public API: batching changes nothing, preemption loses nothing,
// cancelling frees blocks, requests that can never fit are refused up front. Built twice: the engine
// on one rank, and split over HERD_TEST_TP tensor-parallel ranks, against the same one-rank Model API.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "herd/herd.h"

namespace {

const std::string kModel = std::string(HERD_TEST_DATA) + "/models/gqa4-hd32-untied-llama3";

std::vector<int32_t> reference_ids() {
  std::ifstream f(std::string(HERD_TEST_DATA) + "/reference/gqa4-hd32-untied-llama3.json");
  return nlohmann::json::parse(f)["input_ids"].get<std::vector<int32_t>>();
}

// K and V of 2 layers with one KV head of 32, in f16: the CPU's fast-path cache.
constexpr int64_t kKvBytesPerToken = 2 * 2 * 32 * 2;

#ifndef HERD_TEST_TP
#define HERD_TEST_TP 1
#endif

herd::EngineOptions cpu(int64_t kv_memory = 0) {
  herd::EngineOptions o;
  o.device = "cpu";
  o.n_threads = 2;
  o.tensor_parallel = HERD_TEST_TP;
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

// Submits one request and collects all of its events.
struct RequestIdReader {
  std::vector<herd::Event> events;
  RequestIdReader(herd::Engine& e, const herd::GenerateRequest& r) {
    herd::RequestId id;
    EXPECT_TRUE(e.submit(r, &id));
    herd::Event ev;
    while (e.next_event(id, &ev)) events.push_back(ev);
  }
};

// The token ids of requests first .. first + n - 1 (a request's samples).
std::vector<std::vector<int32_t>> read_tokens(herd::Engine& e, herd::RequestId first, int n) {
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    herd::Event ev;
    while (e.next_event(first + uint64_t(i), &ev))
      if (ev.type == herd::Event::Type::token) out[size_t(i)].push_back(ev.token);
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

// Prompts longer than one step are prefilled in chunks, most of which need no logits row: any
// chunking gives the tokens of the single-pass Model API, alone or beside a short request.
TEST(Engine, PromptsLongerThanAStepInChunksOfAnySize) {
  herd::ModelOptions mo;
  mo.device = "cpu";
  std::unique_ptr<herd::Model> model;
  ASSERT_TRUE(herd::Model::load(kModel, mo, &model));
  const auto ids = reference_ids();
  herd::GenerateRequest long_r, short_r = requests(1, 4)[0];
  for (int i = 0; i < 1500; ++i) long_r.prompt.push_back(ids[size_t(i * 7 % 64)] ^ (i % 3));
  long_r.max_tokens = 4;
  long_r.ignore_eos = short_r.ignore_eos = true;
  const std::vector<int32_t> want = alone(*model, long_r), want_short = alone(*model, short_r);
  for (int64_t chunk : {1, 7, 512}) {
    herd::EngineOptions o = cpu();
    o.max_batch_tokens = chunk;
    auto e = load(o);
    const auto got = run_together(*e, {long_r, short_r});
    EXPECT_EQ(got[0], want) << "chunks of " << chunk;
    EXPECT_EQ(got[1], want_short) << "chunks of " << chunk;
  }
}

TEST(Engine, PreemptionUnderAnEightBlockBudgetLosesNothing) {
  const auto rs = requests(20, 40);  // each needs at most 61 tokens = 4 blocks: fits alone
  herd::ModelOptions mo;
  mo.device = "cpu";
  std::unique_ptr<herd::Model> model;
  ASSERT_TRUE(herd::Model::load(kModel, mo, &model));
  // 8 blocks of 16 tokens at 256 bytes per token (2 layers x 1 KV head x 32 x f16 x K,V).
  auto e = load(cpu(8 * 16 * kKvBytesPerToken));
  ASSERT_EQ(e->stats().kv_blocks_total, 8);
  ASSERT_EQ(e->stats().kv_bytes_per_token, 256);
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
  auto e = load(cpu(8 * 16 * kKvBytesPerToken));  // 128 tokens of KV
  herd::RequestId id;
  herd::GenerateRequest r;
  r.prompt.assign(100, 5);
  r.max_tokens = 29;
  auto s = e->submit(r, &id);
  EXPECT_EQ(s.code(), herd::Status::Code::resource_exhausted);
  EXPECT_NE(s.message().find("exceed the KV cache of 128 tokens; give the engine more KV memory"), std::string::npos) << s.message();
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

TEST(Engine, SeededSamplingDoesNotDependOnTheBatch) {
  auto e = load(cpu());
  herd::GenerateRequest r = requests(1, 24)[0];
  r.sampling.temperature = 0.9f;
  r.sampling.top_p = 0.95f;
  r.sampling.repetition_penalty = 1.1f;
  r.sampling.seed = 11;
  herd::GenerateResult alone_result;
  ASSERT_TRUE(e->generate(r, &alone_result));
  // The same request among fifteen others with their own seeds.
  auto others = requests(15, 24);
  for (size_t i = 0; i < others.size(); ++i) others[i].sampling.temperature = 1.0f, others[i].sampling.seed = 100 + i;
  others.insert(others.begin() + 7, r);
  const auto together = run_together(*e, others);
  EXPECT_EQ(together[7], alone_result.ids);
  herd::ModelOptions mo;
  mo.device = "cpu";
  std::unique_ptr<herd::Model> model;
  ASSERT_TRUE(herd::Model::load(kModel, mo, &model));
  EXPECT_NE(alone_result.ids, alone(*model, r)) << "temperature 0.9 should leave the greedy path within 24 tokens";
}

TEST(Engine, LogprobsAreTheLogSoftmaxOfTheModelsLogits) {
  auto e = load(cpu());
  herd::ModelOptions mo;
  mo.device = "cpu";
  std::unique_ptr<herd::Model> model;
  ASSERT_TRUE(herd::Model::load(kModel, mo, &model));
  herd::GenerateRequest r = requests(1, 6)[0];
  r.sampling.logprobs = 3;
  std::vector<int32_t> tokens = r.prompt;
  RequestIdReader read(*e, r);
  for (const herd::Event& ev : read.events) {
    if (ev.type != herd::Event::Type::token) continue;
    std::vector<float> logits;
    ASSERT_TRUE(model->logits(tokens, false, &logits));
    double mx = -INFINITY, sum = 0;
    for (float v : logits) mx = std::max(mx, double(v));
    for (float v : logits) sum += std::exp(double(v) - mx);
    const double lse = mx + std::log(sum);
    EXPECT_NEAR(ev.logprob, double(logits[size_t(ev.token)]) - lse, 1e-4);
    ASSERT_EQ(ev.top_logprobs.size(), 3u);
    EXPECT_EQ(ev.top_logprobs[0].token, ev.token);  // greedy: the chosen token is the most likely
    EXPECT_GE(ev.top_logprobs[0].logprob, ev.top_logprobs[1].logprob);
    EXPECT_NEAR(ev.top_logprobs[1].logprob, double(logits[size_t(ev.top_logprobs[1].token)]) - lse, 1e-4);
    tokens.push_back(ev.token);
  }
  EXPECT_EQ(tokens.size(), r.prompt.size() + 6);
}

// A tiny model with Llama 3's vocabulary and tokenizer, so that requests have text.
TEST(Engine, StopStringsEndTheTextBeforeThem) {
  namespace fs = std::filesystem;
  const fs::path d = fs::temp_directory_path() / ("herd-stop-" + std::to_string(::getpid()));
  fs::create_directories(d);
  std::ofstream(d / "base.json") << R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 128256,
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
    "num_key_value_heads": 1, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128009], "tie_word_embeddings": false})";
  herd::SyntheticModelSpec spec;
  spec.config_path = (d / "base.json").string();
  spec.seed = 5;
  ASSERT_TRUE(herd::write_synthetic_model(spec, (d / "m").string()));
  fs::copy_file(std::string(HERD_TEST_DATA) + "/tokenizer/tokenizer.model", d / "m" / "tokenizer.model");
  std::unique_ptr<herd::Engine> e;
  ASSERT_TRUE(herd::Engine::load((d / "m").string(), cpu(), &e));
  ASSERT_TRUE(e->has_tokenizer());
  herd::GenerateRequest r;
  r.text = "The quick brown fox";
  r.max_tokens = 24;
  r.ignore_eos = true;
  herd::GenerateResult free_run;
  ASSERT_TRUE(e->generate(r, &free_run));
  ASSERT_GT(free_run.text.size(), 12u);
  // A stop string taken from the middle of the free run: the text must end right before its
  // first occurrence (found here by plain string search), and the request must stop there.
  const std::string stop = free_run.text.substr(free_run.text.size() / 2, 4);
  r.sampling.stop = {"never appears \x01", stop};
  herd::GenerateResult stopped;
  ASSERT_TRUE(e->generate(r, &stopped));
  EXPECT_EQ(stopped.text, free_run.text.substr(0, free_run.text.find(stop)));
  EXPECT_EQ(stopped.finish_reason, herd::FinishReason::stop);
  EXPECT_LT(stopped.ids.size(), free_run.ids.size());
  EXPECT_EQ(stopped.ids, std::vector<int32_t>(free_run.ids.begin(), free_run.ids.begin() + long(stopped.ids.size())));
  fs::remove_all(d);
}

TEST(Engine, PromptLogprobsScoreEachPromptTokenThroughChunks) {
  herd::EngineOptions o = cpu();
  o.max_batch_tokens = 7;  // the prompt's logits rows arrive over several chunks
  auto e = load(o);
  const auto ids = reference_ids();
  herd::GenerateRequest r;
  r.prompt.assign(ids.begin(), ids.begin() + 30);
  r.max_tokens = 2;
  r.prompt_logprobs = true;
  herd::GenerateResult res;
  ASSERT_TRUE(e->generate(r, &res));
  ASSERT_EQ(res.prompt_logprobs.size(), 29u);
  herd::ModelOptions mo;
  mo.device = "cpu";
  std::unique_ptr<herd::Model> model;
  ASSERT_TRUE(herd::Model::load(kModel, mo, &model));
  std::vector<float> logits;  // [30, n_vocab]: row i predicts token i + 1
  ASSERT_TRUE(model->logits(r.prompt, true, &logits));
  const size_t V = size_t(model->info().n_vocab);
  for (size_t i = 0; i + 1 < r.prompt.size(); ++i) {
    double mx = -INFINITY, sum = 0;
    for (size_t j = 0; j < V; ++j) mx = std::max(mx, double(logits[i * V + j]));
    for (size_t j = 0; j < V; ++j) sum += std::exp(double(logits[i * V + j]) - mx);
    EXPECT_EQ(res.prompt_logprobs[i].token, r.prompt[i + 1]);
    EXPECT_NEAR(res.prompt_logprobs[i].logprob, double(logits[i * V + size_t(r.prompt[i + 1])]) - mx - std::log(sum), 1e-4)
        << "prompt token " << i + 1;
  }
}

TEST(Engine, PrefixCacheServesASharedPromptOnce) {
  const auto ids = reference_ids();
  herd::GenerateRequest a, b;
  a.prompt.assign(ids.begin(), ids.begin() + 52);
  b.prompt.assign(ids.begin(), ids.begin() + 50);  // shares a's first 3 blocks of 16, then its own
  b.prompt.insert(b.prompt.end(), {7, 8, 9, 10, 11});
  a.max_tokens = b.max_tokens = 6;
  a.ignore_eos = b.ignore_eos = true;
  a.sampling.logprobs = b.sampling.logprobs = 2;

  // Without a cache: each on a fresh engine.
  herd::GenerateResult a_fresh, b_fresh;
  ASSERT_TRUE(load(cpu())->generate(a, &a_fresh));
  ASSERT_TRUE(load(cpu())->generate(b, &b_fresh));
  EXPECT_EQ(a_fresh.usage.cached_prompt_tokens, 0);

  auto e = load(cpu());
  herd::GenerateResult a1, b1, a2;
  ASSERT_TRUE(e->generate(a, &a1));
  EXPECT_GT(e->stats().kv_blocks_cached, 0);
  ASSERT_TRUE(e->generate(b, &b1));
  ASSERT_TRUE(e->generate(a, &a2));
  // b finds the 3 shared blocks and computes only its other 55 - 48 = 7 prompt tokens; a again
  // finds its own 3 full blocks (its 52nd token, in the 4th block, is always recomputed).
  EXPECT_EQ(b1.usage.cached_prompt_tokens, 48);
  EXPECT_EQ(b1.usage.prompt_tokens - b1.usage.cached_prompt_tokens, 7);
  EXPECT_EQ(a2.usage.cached_prompt_tokens, 48);
  EXPECT_EQ(a1.ids, a_fresh.ids);
  EXPECT_EQ(b1.ids, b_fresh.ids);
  EXPECT_EQ(a2.ids, a_fresh.ids);
  ASSERT_EQ(b1.logprobs.size(), b_fresh.logprobs.size());
  for (size_t i = 0; i < b1.logprobs.size(); ++i) EXPECT_NEAR(b1.logprobs[i], b_fresh.logprobs[i], 1e-5) << i;
  for (size_t i = 0; i < a2.logprobs.size(); ++i) EXPECT_NEAR(a2.logprobs[i], a_fresh.logprobs[i], 1e-5) << i;
  EXPECT_EQ(e->stats().kv_blocks_free, e->stats().kv_blocks_total);
}

// Scoring only the tail of a prompt (multiple-choice evaluation): with prompt_logprobs_from = 40
// the first 39 tokens may come from the prefix cache; the logprobs equal the full run's.
TEST(Engine, PromptLogprobsFromAPositionUseThePrefixCache) {
  const auto ids = reference_ids();
  herd::GenerateRequest full;
  full.prompt.assign(ids.begin(), ids.begin() + 50);
  full.max_tokens = 1;
  full.prompt_logprobs = true;
  herd::GenerateResult all;
  auto e = load(cpu());
  ASSERT_TRUE(e->generate(full, &all));  // also leaves the prompt's three full blocks cached
  EXPECT_EQ(all.usage.cached_prompt_tokens, 0) << "scoring from token 1 computes every position";
  ASSERT_EQ(all.prompt_logprobs.size(), 49u);

  herd::GenerateRequest tail = full;
  tail.prompt_logprobs_from = 40;
  herd::GenerateResult part;
  ASSERT_TRUE(e->generate(tail, &part));
  // Position 39 must be computed for token 40's logprob: the cache gives the 2 blocks before it.
  EXPECT_EQ(part.usage.cached_prompt_tokens, 32);
  ASSERT_EQ(part.prompt_logprobs.size(), 10u);
  for (size_t i = 0; i < part.prompt_logprobs.size(); ++i) {
    EXPECT_EQ(part.prompt_logprobs[i].token, all.prompt_logprobs[i + 39].token);
    EXPECT_NEAR(part.prompt_logprobs[i].logprob, all.prompt_logprobs[i + 39].logprob, 1e-5) << "token " << 40 + i;
  }
  tail.prompt_logprobs_from = 51;
  herd::RequestId id;
  EXPECT_EQ(e->submit(tail, &id).code(), herd::Status::Code::invalid_input);
}

// Four samples of one 60-token prompt under a 12-block budget: alone each needs 5 blocks (20 in
// all); sharing the prompt's three full blocks, with the partial fourth copied on first write,
// they need 11. Sample i equals a request of its own with seed + i.
TEST(Engine, SamplesShareThePromptsBlocks) {
  const auto ids = reference_ids();
  herd::GenerateRequest r;
  r.prompt.assign(ids.begin(), ids.begin() + 60);
  r.max_tokens = 8;
  r.ignore_eos = true;
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 40;
  r.n_samples = 4;
  auto e = load(cpu(12 * 16 * kKvBytesPerToken));
  ASSERT_EQ(e->stats().kv_blocks_total, 12);
  herd::RequestId first;
  ASSERT_TRUE(e->submit(r, &first));
  const auto got = read_tokens(*e, first, 4);
  EXPECT_EQ(e->stats().n_preemptions, 0) << "the samples did not share the prompt's blocks";
  EXPECT_EQ(e->stats().kv_blocks_free, 12);
  for (int i = 0; i < 4; ++i) {
    herd::GenerateRequest one = r;
    one.n_samples = 1;
    one.sampling.seed = 40 + uint64_t(i);
    herd::GenerateResult res;
    ASSERT_TRUE(load(cpu())->generate(one, &res));
    EXPECT_EQ(got[size_t(i)], res.ids) << "sample " << i;
  }
  EXPECT_NE(got[0], got[1]);
}

TEST(Engine, CancellingASampleBeforeItBranches) {
  auto e = load(cpu());
  herd::GenerateRequest r = requests(1, 5)[0];
  r.n_samples = 3;
  herd::RequestId first;
  ASSERT_TRUE(e->submit(r, &first));
  e->cancel(first + 2);
  int finished = 0;
  for (int i = 0; i < 3; ++i) {
    herd::Event ev;
    while (e->next_event(first + uint64_t(i), &ev)) finished += ev.type == herd::Event::Type::finished;
  }
  EXPECT_EQ(finished, 3);  // nobody waits forever
  EXPECT_EQ(e->stats().kv_blocks_free, e->stats().kv_blocks_total);
}

// K greedy samples equal the single greedy run; the same 12-block budget argument shows the
// prompt's blocks are stored once.
TEST(Engine, GreedySamplesEqualTheSingleRun) {
  const auto ids = reference_ids();
  herd::GenerateRequest r;
  r.prompt.assign(ids.begin(), ids.begin() + 60);
  r.max_tokens = 8;
  r.ignore_eos = true;
  herd::GenerateResult single;
  ASSERT_TRUE(load(cpu())->generate(r, &single));
  r.n_samples = 4;
  auto e = load(cpu(12 * 16 * kKvBytesPerToken));
  herd::RequestId first;
  ASSERT_TRUE(e->submit(r, &first));
  const auto got = read_tokens(*e, first, 4);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(got[size_t(i)], single.ids) << "sample " << i;
  EXPECT_EQ(e->stats().n_preemptions, 0);
  EXPECT_EQ(e->stats().kv_blocks_free, 12);
}

// A budget far too small for what runs at once: forks and prefix hits are preempted over and
// over, and still every output equals its run alone, with no block leaked.
TEST(Engine, ForksAndPrefixHitsUnderAFarTooSmallBudget) {
  const auto ids = reference_ids();
  herd::GenerateRequest forked, sharer;
  forked.prompt.assign(ids.begin(), ids.begin() + 40);
  forked.max_tokens = 20;
  forked.ignore_eos = true;
  forked.sampling.temperature = 1.0f;
  forked.sampling.seed = 7;
  forked.n_samples = 3;
  sharer = forked;
  sharer.n_samples = 1;
  sharer.sampling.seed = 99;
  sharer.prompt.push_back(3);  // shares the forked prompt's blocks through the prefix cache
  auto e = load(cpu(5 * 16 * kKvBytesPerToken));  // 5 blocks; each request alone needs 4
  herd::RequestId first, other;
  ASSERT_TRUE(e->submit(forked, &first));
  ASSERT_TRUE(e->submit(sharer, &other));
  auto got = read_tokens(*e, first, 3);
  got.push_back(read_tokens(*e, other, 1)[0]);
  EXPECT_GT(e->stats().n_preemptions, 0);
  EXPECT_EQ(e->stats().kv_blocks_free, e->stats().kv_blocks_total) << "blocks leaked";
  for (int i = 0; i < 4; ++i) {
    herd::GenerateRequest one = i < 3 ? forked : sharer;
    one.n_samples = 1;
    if (i < 3) one.sampling.seed = 7 + uint64_t(i);
    herd::GenerateResult res;
    ASSERT_TRUE(load(cpu())->generate(one, &res));
    EXPECT_EQ(got[size_t(i)], res.ids) << "request " << i;
  }
}

// Unset sampling options take generation_config.json's defaults (greedy without the file).
TEST(Engine, SamplingDefaultsComeFromGenerationConfig) {
  namespace fs = std::filesystem;
  const fs::path d = fs::temp_directory_path() / ("herd-genconf-" + std::to_string(::getpid()));
  fs::copy(kModel, d, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  std::ofstream(d / "generation_config.json") << R"({"do_sample": true, "temperature": 0.7, "top_p": 0.8})";
  herd::GenerateRequest r = requests(1, 16)[0];
  r.sampling.seed = 5;
  std::unique_ptr<herd::Engine> with_config;
  ASSERT_TRUE(herd::Engine::load(d.string(), cpu(), &with_config));
  herd::GenerateResult by_default, explicit_options, greedy;
  ASSERT_TRUE(with_config->generate(r, &by_default));
  auto plain = load(cpu());  // the same weights without generation_config.json
  ASSERT_TRUE(plain->generate(r, &greedy));
  r.sampling.temperature = 0.7f;
  r.sampling.top_p = 0.8f;
  ASSERT_TRUE(plain->generate(r, &explicit_options));
  EXPECT_EQ(by_default.ids, explicit_options.ids);
  EXPECT_NE(by_default.ids, greedy.ids);
  fs::remove_all(d);
}


// A copy of the test model whose embedding row `token` is NaN (bf16 0x7fc0): any sequence that
// contains the token gets non-finite logits from there on; the others are untouched.
std::string model_with_nan_token(int32_t token) {
  namespace fs = std::filesystem;
  const fs::path d = fs::temp_directory_path() / ("herd-nan-" + std::to_string(::getpid()));
  fs::copy(kModel, d, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  std::fstream f(d / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  f.read(header.data(), std::streamsize(n));
  const auto e = nlohmann::json::parse(header)["model.embed_tokens.weight"];
  EXPECT_EQ(e["dtype"], "BF16");
  const int64_t cols = e["shape"][1], at = 8 + int64_t(n) + e["data_offsets"][0].get<int64_t>() + token * cols * 2;
  f.seekp(at);
  for (int64_t i = 0; i < cols; ++i) f.write("\xc0\x7f", 2);
  return d.string();
}

// Non-finite logits end their request with an error naming the position, on every path that
// reads them (the device argmax, sampling, prompt logprobs); other requests run on untouched.
TEST(Engine, NonFiniteLogitsEndOnlyTheirRequest) {
  const int32_t bad = 77;
  const std::string path = model_with_nan_token(bad);
  std::unique_ptr<herd::Engine> e;
  ASSERT_TRUE(herd::Engine::load(path, cpu(), &e));
  herd::GenerateRequest good = requests(1, 6)[0];
  for (int32_t& t : good.prompt) t = t == bad ? bad + 1 : t;
  herd::GenerateResult want;
  ASSERT_TRUE(load(cpu())->generate(good, &want));
  for (int variant = 0; variant < 3; ++variant) {
    herd::GenerateRequest r = good;
    r.prompt.insert(r.prompt.begin() + 2, bad);  // position 2
    if (variant == 1) r.sampling.temperature = 0.8f, r.sampling.seed = 1;
    if (variant == 2) r.prompt_logprobs = true;
    herd::RequestId bad_id, good_id;
    ASSERT_TRUE(e->submit(r, &bad_id));
    ASSERT_TRUE(e->submit(good, &good_id));
    herd::Event ev;
    int n_tokens = 0;
    while (e->next_event(bad_id, &ev)) n_tokens += ev.type == herd::Event::Type::token;
    EXPECT_EQ(n_tokens, 0) << "variant " << variant;
    EXPECT_EQ(ev.finish_reason, herd::FinishReason::error) << "variant " << variant;
    const std::string where = variant == 2 ? "position 2 " : "position " + std::to_string(r.prompt.size() - 1) + " ";
    EXPECT_NE(ev.error.find(where), std::string::npos) << ev.error;
    std::vector<int32_t> got;
    while (e->next_event(good_id, &ev))
      if (ev.type == herd::Event::Type::token) got.push_back(ev.token);
    EXPECT_EQ(got, want.ids) << "variant " << variant;
  }
  // The single-sequence API reports it as an error Status too.
  herd::ModelOptions mo;
  mo.device = "cpu";
  std::unique_ptr<herd::Model> m;
  ASSERT_TRUE(herd::Model::load(path, mo, &m));
  std::vector<int32_t> out;
  const herd::Status s = m->generate_greedy({1, bad, 3}, 2, &out);
  EXPECT_FALSE(s);
  EXPECT_NE(s.message().find("position 2 "), std::string::npos) << s.message();
  std::filesystem::remove_all(path);
}

}  // namespace
