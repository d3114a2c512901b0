// Threads submit, read (one request at a time, or many at once with wait_any), cancel and release
// at random while the engine steps. Built and run under ThreadSanitizer by scripts/test (label
// tsan); assertions run on the main thread only.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "herd/herd.h"

namespace {

TEST(EngineThreads, SubmitAndCancelFromManyThreads) {
  herd::EngineOptions o;
  o.device = "cpu";
  o.n_threads = 2;
  o.kv_memory = 16 * 16 * 512;  // 16 blocks: preemption happens too
  std::unique_ptr<herd::Engine> engine;
  ASSERT_TRUE(herd::Engine::load(std::string(HERD_TEST_DATA) + "/models/gqa4-hd32-untied-llama3", o, &engine));

  std::atomic<int> finished{0}, cancelled{0}, bad{0}, submitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t));
      for (int i = 0; i < 12; ++i) {
        herd::GenerateRequest r;
        r.prompt.resize(1 + rng() % 40);
        for (auto& id : r.prompt) id = int32_t(rng() % 256);
        r.max_tokens = 1 + int(rng() % 30);
        r.ignore_eos = rng() % 2;
        herd::RequestId id;
        if (!engine->submit(r, &id)) {
          ++bad;
          continue;
        }
        ++submitted;
        const int cancel_after = rng() % 3 == 0 ? int(rng() % 5) : -1;
        int n_tokens = 0;
        herd::Event ev;
        bool done = false;
        while (engine->next_event(id, &ev)) {
          if (ev.type == herd::Event::Type::finished) {
            done = true;
            ++finished;
            cancelled += ev.finish_reason == herd::FinishReason::cancelled;
            if (ev.finish_reason == herd::FinishReason::error) ++bad;
            if (ev.usage.completion_tokens != n_tokens) ++bad;
            break;
          }
          if (n_tokens++ == cancel_after) engine->cancel(id);
        }
        if (!done) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(finished, submitted);
  EXPECT_EQ(submitted, 8 * 12);
  const auto st = engine->stats();
  EXPECT_EQ(st.kv_blocks_free, st.kv_blocks_total) << "blocks leaked";
  EXPECT_EQ(st.n_running + st.n_waiting, 0);
}

// Each thread keeps several requests in flight and reads them all with wait_any, as a server's
// event loop does; some are released half-way (their client went away), some time out between
// waits. Every request ends once, and every block comes back.
TEST(EngineThreads, WaitAnyAndReleaseFromManyThreads) {
  herd::EngineOptions o;
  o.device = "cpu";
  o.n_threads = 2;
  o.kv_memory = 16 * 16 * 512;
  o.max_queued = 64;
  std::unique_ptr<herd::Engine> engine;
  ASSERT_TRUE(herd::Engine::load(std::string(HERD_TEST_DATA) + "/models/gqa4-hd32-untied-llama3", o, &engine));

  std::atomic<int> bad{0}, ended{0}, dropped{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(100 + t));
      for (int round = 0; round < 4; ++round) {
        std::vector<herd::RequestId> ids;
        for (int i = 0; i < 5; ++i) {
          herd::GenerateRequest r;
          r.prompt.resize(1 + rng() % 30);
          for (auto& id : r.prompt) id = int32_t(rng() % 256);
          r.max_tokens = 1 + int(rng() % 20);
          r.ignore_eos = true;
          herd::RequestId id;
          if (engine->submit(r, &id)) ids.push_back(id);
          else ++bad;
        }
        const herd::RequestId drop = ids[rng() % ids.size()];
        std::set<herd::RequestId> done;
        bool drop_released = false;
        int events = 0;
        herd::Event ev;
        auto take = [&](herd::RequestId id) {
          if (id == drop && drop_released) ++bad;  // nothing comes after a release
          if (ev.type == herd::Event::Type::finished) done.insert(id), ++ended;
          if (++events == 3 && !done.count(drop)) {
            engine->release(drop);
            drop_released = true;
            ++dropped;
          }
        };
        // Short waits that time out now and then, as a server that checks its sockets does; then
        // long ones for the rest.
        while (auto id = engine->wait_any(ids, std::chrono::milliseconds(rng() % 3), &ev)) take(*id);
        while (auto id = engine->wait_any(ids, std::chrono::seconds(60), &ev)) take(*id);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(ended + dropped, 6 * 4 * 5);  // each request ended once, or was released unfinished
  // Released requests' blocks are freed by the worker before its next step.
  herd::EngineStats st;
  for (int i = 0; i < 500; ++i) {
    st = engine->stats();
    if (st.kv_blocks_free == st.kv_blocks_total && st.n_running + st.n_waiting == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(st.kv_blocks_free, st.kv_blocks_total) << "blocks leaked";
  EXPECT_EQ(st.n_running + st.n_waiting, 0);
}

}  // namespace
