// The server's threads in one process: 16 clients send plain and streamed chat requests and read
// /metrics at once, some hanging up mid-stream, while the engine steps; then a stop drains. Built
// and run under ThreadSanitizer by scripts/test (label stress); assertions run on the main thread.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "herd/herd.h"
#include "server.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A random model with Llama 3's full vocabulary and tokenizer, so chat requests render.
fs::path make_model() {
  const fs::path dir = fs::temp_directory_path() / ("herd-serve-threads-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "base.json") << R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 128256,
    "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
    "num_key_value_heads": 1, "max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "tie_word_embeddings": false})";
  herd::SyntheticModelSpec spec;
  spec.config_path = (dir / "base.json").string();
  EXPECT_TRUE(herd::write_synthetic_model(spec, (dir / "m").string()));
  fs::copy_file(std::string(HERD_TEST_DATA) + "/tokenizer/tokenizer.model", dir / "m" / "tokenizer.model",
                fs::copy_options::overwrite_existing);
  return dir;
}

std::string chat_body(int max_tokens, bool stream) {
  return json{{"messages", {{{"role", "user"}, {"content", "Tell me a story."}}}},
              {"max_tokens", max_tokens},
              {"temperature", 1.0},
              {"stream", stream}}
      .dump();
}

TEST(ServerThreads, ConcurrentClientsHangUpsAndDrain) {
  const fs::path dir = make_model();
  herd::EngineOptions o;
  o.device = "cpu";
  o.n_threads = 2;
  o.max_seqs = 8;
  o.kv_memory = 16 * 16 * 256;  // a small cache: preemption happens too
  std::unique_ptr<herd::Engine> engine;
  ASSERT_TRUE(herd::Engine::load((dir / "m").string(), o, &engine));

  herd_serve::ServeOptions so;
  so.port = 0;
  so.model_name = "m";
  so.http_threads = 24;
  so.drain_timeout_s = 20;
  herd_serve::Server server(*engine, so);
  std::string error;
  ASSERT_TRUE(server.bind(&error)) << error;
  const int port = server.port();
  std::thread serving([&] { server.run(); });

  std::atomic<int> ok{0}, hung_up{0}, bad{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 16; ++t) {
    clients.emplace_back([&, t] {
      httplib::Client cli("127.0.0.1", port);
      cli.set_read_timeout(120, 0);
      for (int i = 0; i < 4; ++i) {
        const int kind = (t + i) % 4;
        if (kind == 0) {  // plain
          auto res = cli.Post("/v1/chat/completions", chat_body(6, false), "application/json");
          const bool good = res && res->status == 200 && json::parse(res->body)["usage"]["completion_tokens"] >= 1;
          good ? ++ok : ++bad;
        } else if (kind == 3) {  // /metrics while the others generate
          auto res = cli.Get("/metrics");
          res && res->status == 200 ? ++ok : ++bad;
        } else {  // streamed; kind 2 hangs up after its first bytes
          httplib::Request req;
          req.method = "POST";
          req.path = "/v1/chat/completions";
          req.body = chat_body(kind == 2 ? 500 : 6, true);
          req.set_header("Content-Type", "application/json");
          std::string got;
          req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
            got.append(data, n);
            return !(kind == 2 && got.size() > 200);
          };
          auto res = cli.send(req);
          if (kind == 2) {
            ++hung_up;
            cli.stop();  // the connection is dropped, not reused
          } else if (res && res->status == 200 && got.find("data: [DONE]") != std::string::npos) {
            ++ok;
          } else {
            ++bad;
          }
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(ok + hung_up, 16 * 4);

  // Every block comes back once the hung-up streams are noticed (at their next write).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  herd::EngineStats st = engine->stats();
  while (st.kv_blocks_free != st.kv_blocks_total && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    st = engine->stats();
  }
  EXPECT_EQ(st.kv_blocks_free, st.kv_blocks_total);
  EXPECT_EQ(st.n_running, 0);

  // A stop while a stream runs: it completes; the server then returns.
  std::string streamed;  // the client thread's until it is joined
  std::atomic<bool> streaming{false};
  std::thread last([&] {
    httplib::Client cli("127.0.0.1", port);
    cli.set_read_timeout(120, 0);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.body = chat_body(40, true);
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      streamed.append(data, n);
      streaming = true;
      return true;
    };
    cli.send(req);
  });
  while (!streaming) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  server.stop();
  last.join();
  serving.join();
  EXPECT_NE(streamed.find("data: [DONE]"), std::string::npos) << streamed;
  fs::remove_all(dir);
}

}  // namespace
