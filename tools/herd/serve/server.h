// `herd serve`: OpenAI's HTTP API over one Engine, on cpp-httplib. Each connection has a thread
// of the HTTP pool; requests share the engine's continuous batching. docs/serve.md describes the
// endpoints, limits and errors.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "herd/herd.h"
#include "metrics.h"
#include "request.h"

namespace httplib {
class Server;
}

namespace herd_serve {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;               // 0: any free port (port() tells which)
  std::string api_key;           // "": no authentication
  std::string model_name;        // what /v1/models lists and responses name
  int http_threads = 128;        // connections served at once; more wait for a thread
  size_t max_body_bytes = 8 << 20;
  int read_timeout_s = 30;       // for a request's headers and body
  int write_timeout_s = 30;      // for a client that stops reading
  double drain_timeout_s = 30;   // after a stop, how long in-flight requests may still run
  bool log_json = false;         // one JSON object per request line instead of text
  RequestLimits limits;
  Retrieval retrieval;  // --docs: the index the retrieval extension searches
};

class Server {
 public:
  Server(herd::Engine& engine, ServeOptions options);
  ~Server();

  // Binds the listening socket; false with *error (the address, and why) when it cannot.
  bool bind(std::string* error);
  int port() const { return port_; }
  // Serves until stop(), then lets requests in flight finish (new ones get 503) for at most
  // drain_timeout_s, and returns.
  void run();
  // From any thread (a signal handler's thread): begins the drain.
  void stop();

 private:
  void routes();
  void serve_generation(bool chat, const std::string& body, void* response);
  bool authorized(const std::string& header) const;

  herd::Engine& engine_;
  ServeOptions options_;
  Metrics metrics_;
  std::unique_ptr<httplib::Server> http_;
  int port_ = 0;
  int listen_fd_ = -1;  // the listening socket, whose backlog bind() raises
  std::mutex mu_;
  std::condition_variable cv_;
  bool draining_ = false;
  int64_t in_flight_ = 0;  // generation requests not finished (streams included)
};

}  // namespace herd_serve
