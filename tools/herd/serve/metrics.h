// The server's counters and latency histograms, written in Prometheus' text format at /metrics
// together with the engine's own state (queue, running sequences, KV blocks). Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "herd/herd.h"

namespace herd_serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}
  void observe(double v);
  void write(std::string* out, const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); the last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  void request_done(const std::string& endpoint, int status);
  // One finished generation request: its tokens, and whether part of its prompt came from the cache.
  void tokens(int64_t prompt, int64_t cached, int64_t completion);
  void time_to_first_token(double seconds);
  void inter_token(double seconds);
  void request_latency(double seconds);
  std::string text(const herd::EngineStats& engine) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (endpoint, status) -> count
  int64_t prompt_tokens_ = 0, cached_tokens_ = 0, completion_tokens_ = 0;
  Histogram ttft_, itl_, latency_;
};

}  // namespace herd_serve
