// What a server needs of the engine: waiting on many requests at once, releasing a request whose
// reader went away, knowing which stop ended a request, a bounded queue, and prompts given as a
// conversation rendered with the engine's own tokenizer.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "herd/herd.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kModel = std::string(HERD_TEST_DATA) + "/models/gqa4-hd32-untied-llama3";

herd::EngineOptions cpu() {
  herd::EngineOptions o;
  o.device = "cpu";
  o.n_threads = 2;
  return o;
}

std::unique_ptr<herd::Engine> load(const herd::EngineOptions& o, const std::string& path = kModel) {
  std::unique_ptr<herd::Engine> e;
  const herd::Status s = herd::Engine::load(path, o, &e);
  EXPECT_TRUE(s) << s.message();
  return e;
}

herd::GenerateRequest request(int first, int max_tokens) {
  herd::GenerateRequest r;
  for (int i = 0; i < 6; ++i) r.prompt.push_back(first + i);
  r.max_tokens = max_tokens;
  r.ignore_eos = true;
  return r;
}

// Polls until every KV block is free again (the worker frees them before its next step).
bool all_blocks_free(herd::Engine& e) {
  for (int i = 0; i < 500; ++i) {
    const auto st = e.stats();
    if (st.kv_blocks_free == st.kv_blocks_total && st.n_running + st.n_waiting == 0) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

TEST(EngineEvents, WaitAnyDeliversEveryRequestsEventsInOrderAsTheyFinish) {
  auto e = load(cpu());
  // Long enough that the four are submitted well before the first could end, even on a busy machine.
  const std::vector<int> lengths = {400, 3, 200, 90};
  std::vector<herd::RequestId> ids;
  std::map<herd::RequestId, std::vector<int32_t>> want;  // each request read on its own
  std::vector<std::vector<int32_t>> alone;
  // Request i's prompt starts at id 10 + 20 i.
  for (size_t i = 0; i < lengths.size(); ++i) {
    herd::GenerateResult res;
    ASSERT_TRUE(e->generate(request(10 + 20 * int(i), lengths[i]), &res));
    alone.push_back(res.ids);
  }
  for (size_t i = 0; i < lengths.size(); ++i) {
    herd::RequestId id;
    ASSERT_TRUE(e->submit(request(10 + 20 * int(i), lengths[i]), &id));
    ids.push_back(id);
    want[id] = alone[i];
  }
  std::map<herd::RequestId, std::vector<int32_t>> got;
  std::vector<herd::RequestId> finish_order;
  herd::Event ev;
  while (auto id = e->wait_any(ids, 10s, &ev)) {
    if (ev.type == herd::Event::Type::token) got[*id].push_back(ev.token);
    if (ev.type == herd::Event::Type::finished) {
      finish_order.push_back(*id);
      EXPECT_EQ(ev.finish_reason, herd::FinishReason::length);
      EXPECT_EQ(ev.usage.completion_tokens, int64_t(got[*id].size()));
    }
  }
  EXPECT_EQ(got, want);
  // Started together, the shortest request finishes first and the longest last.
  ASSERT_EQ(finish_order.size(), 4u);
  EXPECT_EQ(finish_order.front(), ids[1]);
  EXPECT_EQ(finish_order.back(), ids[0]);
  // Every request has been read to its end: nothing is left to wait for.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(e->wait_any(ids, 10s, &ev));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

TEST(EngineEvents, WaitAnyTimesOutWhileARequestWaitsForRoom) {
  herd::EngineOptions o = cpu();
  o.max_seqs = 1;  // the second request waits until the first one ends
  auto e = load(o);
  herd::RequestId a, b;
  // a fills the model's context (2,000 tokens, some 0.15 s on a fast machine): b waits far longer
  // than the 30 ms wait.
  ASSERT_TRUE(e->submit(request(1, 2000), &a));
  ASSERT_TRUE(e->submit(request(2, 2), &b));
  herd::Event ev;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(e->wait_any(std::span(&b, 1), 30ms, &ev));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
  e->cancel(a);
  int tokens = 0;
  while (e->next_event(b, &ev)) tokens += ev.type == herd::Event::Type::token;
  EXPECT_EQ(tokens, 2);
}

TEST(EngineEvents, ReleaseFreesTheBlocksAndDropsTheEvents) {
  auto e = load(cpu());
  herd::RequestId id;
  ASSERT_TRUE(e->submit(request(3, 1000), &id));
  herd::Event ev;
  ASSERT_TRUE(e->next_event(id, &ev));
  e->release(id);
  EXPECT_TRUE(all_blocks_free(*e));
  EXPECT_FALSE(e->next_event(id, &ev));
  EXPECT_FALSE(e->wait_any(std::span(&id, 1), 10s, &ev));
  e->release(id);  // twice, or after the end: nothing happens
  // A request released before it ever ran.
  ASSERT_TRUE(e->submit(request(4, 1000), &id));
  e->release(id);
  EXPECT_TRUE(all_blocks_free(*e));
}

TEST(EngineEvents, ReleaseWakesAReaderOnAnotherThread) {
  auto e = load(cpu());
  herd::RequestId a, b;
  herd::EngineOptions o = cpu();
  ASSERT_TRUE(e->submit(request(5, 1000), &a));
  ASSERT_TRUE(e->submit(request(6, 1000), &b));
  std::atomic<int> read_after_release{0};
  std::atomic<bool> released{false};
  std::thread reader([&] {
    herd::Event ev;
    const herd::RequestId ids[] = {a, b};
    while (e->wait_any(ids, 60s, &ev)) read_after_release += released ? 1 : 0;
  });
  std::this_thread::sleep_for(50ms);
  released = true;
  e->release(a);
  e->release(b);
  reader.join();  // returns once both are gone, long before its 60 s
  EXPECT_LE(read_after_release, 2);  // at most an event each that was taken as release came
  EXPECT_TRUE(all_blocks_free(*e));
}

TEST(EngineEvents, TheFinishedEventSaysWhichStopEndedTheRequest) {
  // With these prompt ids, the f32 reference's greedy continuation reaches eos id 2 at step 5.
  std::ifstream f(std::string(HERD_TEST_DATA) + "/reference/mha-hd64-untied.json");
  std::vector<int32_t> prompt;
  for (std::string line; std::getline(f, line);) {
    const auto at = line.find("\"input_ids\"");
    if (at == std::string::npos) continue;
    const auto open = line.find('[', at), close = line.find(']', at);
    std::string list = line.substr(open + 1, close - open - 1);
    for (size_t p = 0; p < list.size();) {
      prompt.push_back(std::stoi(list.substr(p)));
      p = list.find(',', p);
      p = p == std::string::npos ? list.size() : p + 1;
    }
  }
  ASSERT_FALSE(prompt.empty());
  auto e = load(cpu(), std::string(HERD_TEST_DATA) + "/models/mha-hd64-untied");
  herd::GenerateRequest r;
  r.prompt = prompt;
  r.max_tokens = 16;
  herd::GenerateResult res;
  ASSERT_TRUE(e->generate(r, &res));
  EXPECT_EQ(res.finish_reason, herd::FinishReason::stop);
  EXPECT_EQ(res.stop_token, 2);
  EXPECT_EQ(res.stop_string, "");
  r.max_tokens = 3;
  ASSERT_TRUE(e->generate(r, &res));
  EXPECT_EQ(res.finish_reason, herd::FinishReason::length);
  EXPECT_EQ(res.stop_token, -1);
}

TEST(EngineEvents, AFullQueueRefusesWithResourceExhausted) {
  herd::EngineOptions o = cpu();
  o.max_seqs = 1;
  o.max_queued = 1;
  auto e = load(o);
  herd::RequestId a, b, c;
  // b is long too, so that it is still unfinished when a has ended (below).
  ASSERT_TRUE(e->submit(request(1, 1000), &a));
  ASSERT_TRUE(e->submit(request(2, 1000), &b));
  const herd::Status s = e->submit(request(3, 4), &c);
  EXPECT_EQ(s.code(), herd::Status::Code::resource_exhausted) << s.message();
  EXPECT_NE(s.message().find("retry later"), std::string::npos) << s.message();
  herd::GenerateRequest two = request(3, 4);
  e->cancel(a);
  herd::Event ev;
  while (e->next_event(a, &ev)) {
  }
  // a has ended: there is room for one more, but not for a request of two samples.
  two.n_samples = 2;
  EXPECT_EQ(e->submit(two, &c).code(), herd::Status::Code::resource_exhausted);
  ASSERT_TRUE(e->submit(request(3, 4), &c));
  while (e->next_event(b, &ev)) {
  }
  while (e->next_event(c, &ev)) {
  }
  EXPECT_TRUE(all_blocks_free(*e));
}

// A full-vocabulary Llama 3 model with random weights and the Llama 3 tokenizer.
class EngineConversation : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("herd-conv-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "base.json") << R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 128256,
      "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
      "num_key_value_heads": 1, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
      "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "tie_word_embeddings": false})";
    herd::SyntheticModelSpec spec;
    spec.config_path = (dir_ / "base.json").string();
    spec.seed = 9;
    ASSERT_TRUE(herd::write_synthetic_model(spec, (dir_ / "m").string()));
    fs::copy_file(std::string(HERD_TEST_DATA) + "/tokenizer/tokenizer.model", dir_ / "m" / "tokenizer.model");
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(EngineConversation, AConversationIsRenderedWithTheEnginesTokenizer) {
  auto e = load(cpu(), (dir_ / "m").string());
  ASSERT_NE(e->tokenizer(), nullptr);
  EXPECT_EQ(herd::prompt_format(*e->tokenizer()), herd::PromptFormat::llama3);
  herd::Conversation conv;
  conv.messages.push_back({"system", "Be brief.", false, {}});
  conv.messages.push_back({"user", "What is <|eot_id|> for?", false, {}});
  std::vector<int32_t> ids;
  ASSERT_TRUE(herd::render_prompt_ids(conv, *e->tokenizer(), false, &ids));

  herd::GenerateRequest by_ids;
  by_ids.prompt = ids;
  by_ids.max_tokens = 8;
  by_ids.ignore_eos = true;
  herd::GenerateRequest by_conv = by_ids;
  by_conv.prompt.clear();
  by_conv.conversation = conv;
  herd::GenerateResult a, b;
  ASSERT_TRUE(e->generate(by_ids, &a));
  ASSERT_TRUE(e->generate(by_conv, &b));
  EXPECT_EQ(b.usage.prompt_tokens, int64_t(ids.size()));
  EXPECT_EQ(a.ids, b.ids);

  // A conversation the template cannot render is the caller's error.
  herd::Message calls{"assistant", "", false, {{"f", "{}", ""}, {"g", "{}", ""}}};
  by_conv.conversation->messages.push_back(calls);
  herd::RequestId id;
  const herd::Status s = e->submit(by_conv, &id);
  EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
  EXPECT_NE(s.message().find("tool call"), std::string::npos) << s.message();
}

TEST(EngineEvents, AModelWithoutATokenizerHasNone) {
  auto e = load(cpu());
  EXPECT_EQ(e->tokenizer(), nullptr);
  herd::GenerateRequest r;
  r.conversation.emplace();
  r.conversation->messages.push_back({"user", "hi", false, {}});
  herd::RequestId id;
  const herd::Status s = e->submit(r, &id);
  EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
  EXPECT_NE(s.message().find("no tokenizer"), std::string::npos) << s.message();
}

}  // namespace
