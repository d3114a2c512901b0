#include "server.h"

#include <httplib.h>

#include <sys/socket.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "api-error.h"
#include "generation.h"

namespace herd_serve {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// What the request log line needs to know about the request this thread is serving. The HTTP
// pool runs a request's handler, its stream and the logger on one thread, one request at a time.
struct RequestLog {
  Clock::time_point start;
  int64_t prompt_tokens = -1, completion_tokens = -1;
};
thread_local RequestLog t_log;

// How long a stream waits for tokens before it writes a comment line: writing is how a client
// that went away is noticed, and then its request is released.
constexpr auto kHeartbeat = std::chrono::milliseconds(1000);
constexpr auto kPollSlice = std::chrono::milliseconds(250);

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  res.set_content(dump(e.body()), "application/json");
}

// Metrics label for a path: the served routes by name, everything else as one label.
std::string endpoint_label(const std::string& path) {
  for (const char* known : {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics", "/tokenize",
                            "/detokenize"})
    if (path == known) return path;
  return "other";
}

// The method a served path takes ("" for a path that is not served): another one gets 405.
std::string allowed_method(const std::string& path) {
  for (const char* get : {"/v1/models", "/health", "/metrics"})
    if (path == get) return "GET";
  for (const char* post : {"/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize"})
    if (path == post) return "POST";
  return "";
}

}  // namespace

Server::Server(herd::Engine& engine, ServeOptions options)
    : engine_(engine), options_(std::move(options)), http_(std::make_unique<httplib::Server>()) {
  const int threads = options_.http_threads;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  http_->set_payload_max_length(options_.max_body_bytes);
  http_->set_read_timeout(options_.read_timeout_s, 0);
  http_->set_write_timeout(options_.write_timeout_s, 0);
  routes();
}

Server::~Server() = default;

bool Server::authorized(const std::string& header) const {
  if (options_.api_key.empty()) return true;
  const std::string want = "Bearer " + options_.api_key;
  // Constant time in the key's length: no timing hint of how much of a guess was right.
  if (header.size() != want.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < want.size(); ++i) diff |= uint8_t(header[i] ^ want[i]);
  return diff == 0;
}

void Server::routes() {
  httplib::Server& h = *http_;
  h.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    t_log = {Clock::now(), -1, -1};
    if (req.path != "/health" && !authorized(req.get_header_value("Authorization"))) {
      send_error(res, ApiError(401, "a valid API key is required: send the header Authorization: Bearer KEY",
                               "authentication_error", "", "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    }
    std::lock_guard lock(mu_);
    if (draining_ && req.method == "POST") {
      send_error(res, ApiError(503, "the server is shutting down", "server_error"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  h.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string allow = allowed_method(req.path);
    if (res.status == 404 && !allow.empty()) {
      res.set_header("Allow", allow);
      send_error(res, ApiError(405, req.path + " takes " + allow + ", not " + req.method, "invalid_request_error", "",
                               "method_not_allowed"));
    } else if (res.status == 404) {
      send_error(res, ApiError(404, "no such endpoint: " + req.method + " " + req.path, "not_found_error"));
    } else if (res.status == 413 && req.get_header_value("Content-Type").rfind("application/x-www-form-urlencoded", 0) == 0) {
      // cpp-httplib reads a form body only up to 8 KiB; curl -d sends that type unless told.
      send_error(res, ApiError(413, "a body sent as application/x-www-form-urlencoded (what curl -d sends) may be at "
                                    "most 8 KiB: send the header Content-Type: application/json",
                               "invalid_request_error"));
    } else if (res.status == 413) {
      send_error(res, ApiError(413, "the request body is too large", "invalid_request_error"));
    } else {
      send_error(res, ApiError(res.status, "the request could not be read", "invalid_request_error"));
    }
  });
  h.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, e.what(), "server_error"));
    } catch (...) {
      send_error(res, ApiError(500, "unknown error", "server_error"));
    }
  });
  h.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    const double latency = std::chrono::duration<double>(Clock::now() - t_log.start).count();
    metrics_.request_done(endpoint_label(req.path), res.status);
    if (req.path == "/v1/chat/completions" || req.path == "/v1/completions") metrics_.request_latency(latency);
    std::string line;
    if (options_.log_json) {
      json j = {{"remote", req.remote_addr}, {"method", req.method}, {"path", req.path}, {"status", res.status},
                {"latency_s", latency}};
      if (t_log.prompt_tokens >= 0) j["prompt_tokens"] = t_log.prompt_tokens, j["completion_tokens"] = t_log.completion_tokens;
      line = dump(j);
    } else {
      line = "herd: " + req.remote_addr + " " + req.method + " " + req.path + " " + std::to_string(res.status);
      if (t_log.prompt_tokens >= 0)
        line += " prompt=" + std::to_string(t_log.prompt_tokens) + " completion=" + std::to_string(t_log.completion_tokens);
      char ms[32];
      std::snprintf(ms, sizeof ms, " %.3fs", latency);
      line += ms;
    }
    std::cerr << line + "\n" << std::flush;
  });

  h.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard lock(mu_);
    res.status = draining_ ? 503 : 200;
    res.set_content(draining_ ? R"({"status":"draining"})" : R"({"status":"ok"})", "application/json");
  });
  h.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    const herd::ModelInfo& info = engine_.info();
    json model = {{"id", options_.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "herd"},
                  {"max_model_len", info.max_context}};
    res.set_content(dump({{"object", "list"}, {"data", json::array({model})}}), "application/json");
  });
  h.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.text(engine_.stats()), "text/plain; version=0.0.4");
  });
  h.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req.body);
    if (!engine_.tokenizer()) throw ApiError(400, "the served model has no tokenizer");
    if (body.contains("messages")) {  // as vLLM: a chat request's prompt, rendered as it would be served
      const std::vector<int32_t> ids =
          parse_chat_prompt(body, req.body, engine_, options_.limits, options_.retrieval).gen.prompt;
      res.set_content(dump({{"tokens", ids}, {"count", ids.size()}, {"max_model_len", engine_.info().max_context}}),
                      "application/json");
      return;
    }
    auto it = body.find("prompt");
    if (it == body.end()) it = body.find("content");  // llama.cpp's server calls it content
    if (it == body.end() || !it->is_string()) bad_request("prompt", "must be a string");
    bool add_special = false;
    if (auto a = body.find("add_special_tokens"); a != body.end()) {
      if (!a->is_boolean()) bad_request("add_special_tokens", "must be true or false");
      add_special = a->get<bool>();
    }
    std::vector<int32_t> ids;
    const herd::Tokenizer& tok = *engine_.tokenizer();
    if (herd::Status s = tok.encode(it->get<std::string>(), /*allow_special=*/true, add_special && tok.adds_bos(), &ids); !s)
      bad_request("prompt", s.message());
    res.set_content(dump({{"tokens", ids}, {"count", ids.size()}, {"max_model_len", engine_.info().max_context}}),
                    "application/json");
  });
  h.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req.body);
    if (!engine_.tokenizer()) throw ApiError(400, "the served model has no tokenizer");
    auto it = body.find("tokens");
    if (it == body.end() || !it->is_array()) bad_request("tokens", "must be an array of token ids");
    std::vector<int32_t> ids;
    for (size_t i = 0; i < it->size(); ++i) {
      const json& id = (*it)[i];
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= engine_.info().n_vocab)
        bad_request("tokens[" + std::to_string(i) + "]", "must be a token id in [0, " + std::to_string(engine_.info().n_vocab) + ")");
      ids.push_back(id.get<int32_t>());
    }
    std::string text;
    if (herd::Status s = engine_.tokenizer()->decode(ids, &text); !s) bad_request("tokens", s.message());
    res.set_content(dump({{"prompt", text}}), "application/json");
  });
  h.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    serve_generation(true, req.body, &res);
  });
  h.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    serve_generation(false, req.body, &res);
  });
}

void Server::serve_generation(bool chat, const std::string& body_text, void* response) {
  httplib::Response& res = *static_cast<httplib::Response*>(response);
  const json body = parse_body(body_text);
  ApiRequest r = chat ? parse_chat_request(body, body_text, engine_, options_.limits, options_.retrieval)
                      : parse_completion_request(body, engine_, options_.limits);
  const bool stream = r.stream;
  auto gen = std::make_shared<Generation>(engine_, std::move(r), options_.model_name, metrics_);
  {
    std::lock_guard lock(mu_);
    ++in_flight_;
  }
  // The request is in flight until the last copy of this token goes: after the response is
  // built, or when its stream ends, whether by its last byte, a gone client or an exception.
  std::shared_ptr<void> in_flight(nullptr, [this](void*) {
    std::lock_guard lock(mu_);
    --in_flight_;
    cv_.notify_all();
  });
  if (!stream) {
    std::string ignored;
    while (gen->poll(kPollSlice, &ignored)) {
    }
    t_log.prompt_tokens = gen->prompt_tokens();
    t_log.completion_tokens = gen->completion_tokens();
    res.set_content(dump(gen->response()), "application/json");
    return;
  }
  auto last_write = std::make_shared<Clock::time_point>(Clock::now());
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [gen, last_write, in_flight](size_t, httplib::DataSink& sink) {
        std::string out;
        const bool more = gen->poll(kPollSlice, &out);
        if (out.empty() && more && Clock::now() - *last_write >= kHeartbeat) out = ": keep-alive\n\n";
        if (!out.empty()) {
          if (!sink.write(out.data(), out.size())) return false;  // the client went away
          *last_write = Clock::now();
        }
        if (!more) {
          t_log.prompt_tokens = gen->prompt_tokens();
          t_log.completion_tokens = gen->completion_tokens();
          sink.done();
        }
        return true;
      });
}

bool Server::bind(std::string* error) {
  // Debian's compiled cpp-httplib listens with a backlog of 5: a burst of connections beyond that was
  // reset before the server read them. listen() again on the bound socket raises it (the kernel caps
  // it at net.core.somaxconn).
  http_->set_socket_options([this](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd_ = int(sock);
  });
  port_ = options_.port == 0 ? http_->bind_to_any_port(options_.host) : (http_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port_ <= 0) {
    *error = "cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
             " (in use, or not an address of this machine); pick another with --host/--port";
    return false;
  }
  if (listen_fd_ >= 0) ::listen(listen_fd_, 4096);
  return true;
}

void Server::run() {
  std::thread drain([this] {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return draining_; });
    cv_.wait_for(lock, std::chrono::duration<double>(options_.drain_timeout_s), [&] { return in_flight_ == 0; });
    lock.unlock();
    http_->stop();
  });
  http_->listen_after_bind();
  stop();  // listen can also end on its own (a socket error): the drain thread must still end
  drain.join();
}

void Server::stop() {
  std::lock_guard lock(mu_);
  draining_ = true;
  cv_.notify_all();
}

}  // namespace herd_serve
