// herd serve: the OpenAI-compatible HTTP server (serve/, docs/serve.md). This file is its flags
// and its lifetime: load the engine, bind, serve until SIGINT or SIGTERM, drain, exit 0.
#include <pthread.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

#include "commands.h"
#include "serve/server.h"

namespace herd_cli {

namespace {

struct ServeFlags {
  std::string model;
  herd::EngineOptions engine;
  herd_serve::ServeOptions serve;
  std::string log_format = "text";
  std::string max_body = "8MiB";
  std::string docs;  // a document index for the retrieval extension
};

int run_serve(ServeFlags& f) {
  if (f.serve.api_key.empty())
    if (const char* key = std::getenv("HERD_API_KEY")) f.serve.api_key = key;
  f.serve.log_json = f.log_format == "json";
  f.serve.max_body_bytes = size_t(parse_size(f.max_body, "--max-body"));

  // SIGINT and SIGTERM are taken by one thread (sigwait), not by handlers: every thread started
  // from here on inherits the blocked mask. A client that hangs up must not kill the server.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGUSR1);  // the server ended on its own: the signal thread ends too
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<herd::DocumentIndex> docs;
  if (!f.docs.empty()) {
    if (int rc = report(herd::DocumentIndex::open(f.docs, /*writable=*/false, &docs))) return rc;
    f.serve.retrieval.docs = docs.get();
  }
  std::unique_ptr<herd::Engine> engine;
  if (int rc = report(herd::Engine::load(f.model, f.engine, &engine))) return rc;
  // By default the model is named as the user named it: its file or directory (as llama.cpp and
  // vLLM do), which clients then send back as "model".
  if (f.serve.model_name.empty()) {
    std::filesystem::path p = std::filesystem::path(f.model).lexically_normal();
    if (p.filename().empty()) p = p.parent_path();
    f.serve.model_name = p.filename().string();
  }
  herd_serve::Server server(*engine, f.serve);
  std::string error;
  if (!server.bind(&error)) return report(herd::Status::invalid_input(error));
  const herd::EngineStats st = engine->stats();
  std::cerr << "herd: serving " << f.serve.model_name << " (" << engine->info().device << ", KV cache of "
            << st.kv_capacity_tokens << " tokens) at http://" << f.serve.host << ":" << server.port()
            << "/v1; Ctrl-C stops" << (f.serve.api_key.empty() ? "" : "; an API key is required") << "\n"
            << std::flush;

  std::thread signals([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (sig != SIGUSR1) std::cerr << "herd: stopping: finishing the requests in flight\n" << std::flush;
    server.stop();
  });
  server.run();
  pthread_kill(signals.native_handle(), SIGUSR1);
  signals.join();
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& app, int& rc) {
  auto f = std::make_shared<ServeFlags>();
  f->engine.max_queued = 256;
  CLI::App* cmd = app.add_subcommand("serve", "An OpenAI-compatible HTTP server (docs/serve.md)");
  cmd->add_option("-m,--model", f->model, "Model directory or GGUF file")->required();
  cmd->add_option("--host", f->serve.host, "Address to listen on (0.0.0.0: every interface)")->capture_default_str();
  cmd->add_option("--port", f->serve.port, "Port to listen on (0: any free one, printed at start)")
      ->capture_default_str()
      ->check(int_range(0, 65535));
  cmd->add_option("--api-key", f->serve.api_key,
                  "Require 'Authorization: Bearer KEY' on every endpoint but /health (or set HERD_API_KEY)");
  cmd->add_option("--alias", f->serve.model_name, "The model's name in the API (default: its file or directory name)");
  cmd->add_option("--parallel,--max-seqs", f->engine.max_seqs, "Sequences the engine runs at once")
      ->capture_default_str()
      ->check(int_range(1, 4096));
  cmd->add_option("--max-queue", f->engine.max_queued,
                  "Requests that may wait beyond the running ones; more get 429 (0: no bound)")
      ->capture_default_str()
      ->check(int_range(0, 1 << 20));
  cmd->add_option("--http-threads", f->serve.http_threads, "Connections served at once")
      ->capture_default_str()
      ->check(int_range(1, 4096));
  cmd->add_option("--max-body", f->max_body, "Largest request body, e.g. 8MiB")->capture_default_str();
  cmd->add_option("--max-n", f->serve.limits.max_n, "Most choices (n) per request")
      ->capture_default_str()
      ->check(int_range(1, 256));
  cmd->add_option("--timeout", f->serve.read_timeout_s, "Seconds to read a request's headers and body")
      ->capture_default_str()
      ->check(int_range(1, 3600));
  cmd->add_option("--drain-timeout", f->serve.drain_timeout_s,
                  "After SIGINT/SIGTERM, seconds requests in flight may still run")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  cmd->add_option("--docs", f->docs,
                  "A document index (herd index build) that requests search with \"retrieval\": true (docs/serve.md)");
  cmd->add_option("--docs-k", f->serve.retrieval.k, "Passages a retrieval request gets unless it asks for a number")
      ->capture_default_str()
      ->check(int_range(1, 20));
  cmd->add_option("--log-format", f->log_format, "One line per request: text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  add_engine_flags(cmd, f->engine);
  cmd->callback([f, &rc] { rc = run_serve(*f); });
}

}  // namespace herd_cli
