// A batch of prompts through one engine, each streamed by its own reader thread as tokens come:
// the engine batches them together (continuous batching) while each reader sees only its own.
//   batch-stream MODEL_DIR [N_PROMPTS]
#include <herd/herd.h>

#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: batch-stream MODEL_DIR [N_PROMPTS]\n";
    return 2;
  }
  const int n = argc > 2 ? std::stoi(argv[2]) : 4;
  herd::EngineOptions options;
  options.kv_memory = int64_t(64) << 20;
  std::unique_ptr<herd::Engine> engine;
  if (herd::Status s = herd::Engine::load(argv[1], options, &engine); !s) {
    std::cerr << "batch-stream: " << s.message() << "\n";
    return 2;
  }
  std::vector<herd::RequestId> ids(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    herd::GenerateRequest r;
    r.prompt = {1, int32_t(10 + i), int32_t(20 + 2 * i)};  // different prompts of the same length
    r.max_tokens = 6 + i;
    if (herd::Status s = engine->submit(r, &ids[size_t(i)]); !s) {
      std::cerr << "batch-stream: " << s.message() << "\n";
      return 1;
    }
  }
  std::mutex print;
  std::vector<int> n_tokens(size_t(n), 0);
  std::vector<std::thread> readers;
  for (int i = 0; i < n; ++i) {
    readers.emplace_back([&, i] {
      herd::Event ev;
      while (engine->next_event(ids[size_t(i)], &ev)) {
        std::lock_guard lock(print);
        if (ev.type == herd::Event::Type::token) {
          ++n_tokens[size_t(i)];
          std::cout << "[" << i << "] token " << ev.token << "\n";
        } else if (ev.type == herd::Event::Type::finished) {
          std::cout << "[" << i << "] finished: " << herd::finish_reason_name(ev.finish_reason) << " after "
                    << ev.usage.completion_tokens << " tokens\n";
        }
      }
    });
  }
  for (auto& t : readers) t.join();
  const herd::EngineStats st = engine->stats();
  std::cout << "engine: " << st.n_steps << " steps for " << n << " requests; KV blocks free " << st.kv_blocks_free
            << " of " << st.kv_blocks_total << "\n";
  for (int i = 0; i < n; ++i)
    if (n_tokens[size_t(i)] == 0) return 1;
  return st.kv_blocks_free == st.kv_blocks_total ? 0 : 1;
}
