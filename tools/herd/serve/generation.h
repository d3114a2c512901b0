// One generation request in flight: submits it, reads its choices' events with Engine::wait_any,
// parses tool calls as they stream, and writes OpenAI's response (one JSON object) or its stream
// (server-sent events). Releasing it in the destructor frees the engine's blocks whatever
// happened to the client.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "herd/herd.h"
#include "metrics.h"
#include "request.h"

namespace herd_serve {

class Generation {
 public:
  // Throws ApiError when the engine refuses the request (a full queue: 429).
  Generation(herd::Engine& engine, ApiRequest request, std::string model_name, Metrics& metrics);
  ~Generation();
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // Waits at most `timeout` for events and appends the server-sent events they make to *sse
  // (stream) or keeps them for response(). False once every choice has finished and, for a
  // stream, its last events (usage, [DONE]) are in *sse.
  bool poll(std::chrono::milliseconds timeout, std::string* sse);
  // The whole response (not streamed), after poll() returned false. Throws ApiError when a
  // choice failed inside the engine.
  nlohmann::json response() const;

  int64_t prompt_tokens() const { return prompt_tokens_; }
  int64_t completion_tokens() const;

 private:
  struct Choice;
  void take(Choice& c, herd::Event&& ev, std::string* sse);
  void finish(Choice& c, const herd::Event& ev, std::string* sse);
  nlohmann::json logprob_entry(const herd::Event& ev) const;
  std::string piece(int32_t id) const;
  nlohmann::json chunk(const Choice& c, nlohmann::json delta, const char* finish_reason) const;
  void add_sse(const nlohmann::json& j, std::string* sse) const;
  nlohmann::json usage() const;
  // The retrieval extension's passages, numbered as the prompt cites them.
  nlohmann::json sources() const;

  herd::Engine& engine_;
  ApiRequest req_;
  std::string model_;
  Metrics& metrics_;
  std::string id_;  // chatcmpl-... or cmpl-...
  int64_t created_ = 0;
  std::vector<Choice> choices_;
  std::vector<herd::RequestId> ids_;
  std::chrono::steady_clock::time_point start_;
  bool first_token_seen_ = false;
  bool started_ = false;  // a stream's opening chunks are written
  bool done_ = false;
  int64_t prompt_tokens_ = 0, cached_tokens_ = 0;
  std::optional<std::string> error_;  // a choice that failed in the engine
};

}  // namespace herd_serve
