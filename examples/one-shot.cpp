// One-shot generation: load a model, generate, print.
//   one-shot MODEL_DIR [PROMPT]    (without a prompt, or without a tokenizer, ids 1,2,3 are used)
#include <herd/herd.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: one-shot MODEL_DIR [PROMPT]\n";
    return 2;
  }
  herd::EngineOptions options;
  options.kv_memory = int64_t(64) << 20;  // 64 MiB of KV cache is plenty for one request
  std::unique_ptr<herd::Engine> engine;
  if (herd::Status s = herd::Engine::load(argv[1], options, &engine); !s) {
    std::cerr << "one-shot: " << s.message() << "\n";
    return s.code() == herd::Status::Code::invalid_input ? 2 : 1;
  }
  herd::GenerateRequest request;
  if (argc > 2 && engine->has_tokenizer()) request.text = argv[2];
  else request.prompt = {1, 2, 3};
  request.max_tokens = 8;
  herd::GenerateResult result;
  if (herd::Status s = engine->generate(request, &result); !s) {
    std::cerr << "one-shot: " << s.message() << "\n";
    return 1;
  }
  std::cout << "ids:";
  for (int32_t id : result.ids) std::cout << " " << id;
  std::cout << "\ntext: " << result.text << "\nfinish: " << herd::finish_reason_name(result.finish_reason)
            << ", " << result.usage.prompt_tokens << " prompt + " << result.usage.completion_tokens << " tokens\n";
  return result.ids.empty() ? 1 : 0;
}
