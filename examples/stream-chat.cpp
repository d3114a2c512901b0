// A chat whose replies are printed token by token as the engine makes them: each line of stdin is
// a user turn; the conversation so far is rendered in the model's prompt format every turn, so
// the prefix cache serves the turns before it.
//   stream-chat MODEL [MAX_TOKENS]    (the model needs its tokenizer and a Llama 3.1 or ChatML format)
#include <herd/herd.h>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: stream-chat MODEL [MAX_TOKENS] < lines\n";
    return 2;
  }
  const int max_tokens = argc > 2 ? std::stoi(argv[2]) : 128;
  herd::EngineOptions options;
  options.kv_memory = int64_t(64) << 20;
  std::unique_ptr<herd::Engine> engine;
  std::unique_ptr<herd::Tokenizer> tokenizer;
  herd::Status s = herd::Engine::load(argv[1], options, &engine);
  if (s) s = herd::Tokenizer::load(argv[1], &tokenizer);
  if (!s) {
    std::cerr << "stream-chat: " << s.message() << "\n";
    return s.code() == herd::Status::Code::invalid_input ? 2 : 1;
  }
  herd::Conversation conversation;
  for (std::string line; std::getline(std::cin, line);) {
    conversation.messages.push_back({"user", line});
    herd::GenerateRequest request;
    request.max_tokens = max_tokens;
    herd::RequestId id;
    s = herd::render_prompt_ids(conversation, *tokenizer, /*special_in_content=*/false, &request.prompt);
    if (s) s = engine->submit(request, &id);
    if (!s) {
      std::cerr << "stream-chat: " << s.message() << "\n";
      return 1;
    }
    // Each token event carries the text that became complete with it (a character split across
    // tokens waits for its last one); the finished event carries what was still held back.
    std::string reply;
    herd::Event event;
    while (engine->next_event(id, &event)) {
      std::cout << event.text << std::flush;
      reply += event.text;
      if (event.type == herd::Event::Type::finished && event.finish_reason == herd::FinishReason::error) {
        std::cerr << "\nstream-chat: " << event.error << "\n";
        return 1;
      }
    }
    std::cout << "\n";
    conversation.messages.push_back({"assistant", reply});
  }
  return 0;
}
