#include "metrics.h"

#include <sstream>

namespace herd_serve {

void Histogram::observe(double v) {
  size_t b = 0;
  while (b < bounds_.size() && v > bounds_[b]) ++b;
  ++counts_[b];
  sum_ += v;
  ++count_;
}

void Histogram::write(std::string* out, const std::string& name, const std::string& help) const {
  std::ostringstream os;
  os << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
  uint64_t cumulative = 0;
  for (size_t b = 0; b < bounds_.size(); ++b) {
    cumulative += counts_[b];
    os << name << "_bucket{le=\"" << bounds_[b] << "\"} " << cumulative << "\n";
  }
  os << name << "_bucket{le=\"+Inf\"} " << count_ << "\n" << name << "_sum " << sum_ << "\n" << name << "_count " << count_ << "\n";
  *out += os.str();
}

Metrics::Metrics()
    : ttft_({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}),
      latency_({0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}) {}

void Metrics::request_done(const std::string& endpoint, int status) {
  std::lock_guard lock(mu_);
  ++requests_[{endpoint, status}];
}

void Metrics::tokens(int64_t prompt, int64_t cached, int64_t completion) {
  std::lock_guard lock(mu_);
  prompt_tokens_ += prompt;
  cached_tokens_ += cached;
  completion_tokens_ += completion;
}

void Metrics::time_to_first_token(double s) {
  std::lock_guard lock(mu_);
  ttft_.observe(s);
}

void Metrics::inter_token(double s) {
  std::lock_guard lock(mu_);
  itl_.observe(s);
}

void Metrics::request_latency(double s) {
  std::lock_guard lock(mu_);
  latency_.observe(s);
}

std::string Metrics::text(const herd::EngineStats& e) const {
  std::lock_guard lock(mu_);
  std::ostringstream os;
  os << "# HELP herd_requests_total HTTP requests by endpoint and status.\n# TYPE herd_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    os << "herd_requests_total{endpoint=\"" << key.first << "\",status=\"" << key.second << "\"} " << n << "\n";
  auto counter = [&](const char* name, const char* help, int64_t v) {
    os << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n" << name << " " << v << "\n";
  };
  auto gauge = [&](const char* name, const char* help, double v) {
    os << "# HELP " << name << " " << help << "\n# TYPE " << name << " gauge\n" << name << " " << v << "\n";
  };
  counter("herd_prompt_tokens_total", "Prompt tokens of finished requests.", prompt_tokens_);
  counter("herd_prompt_tokens_cached_total", "Prompt tokens served from the prefix cache.", cached_tokens_);
  counter("herd_generation_tokens_total", "Tokens generated.", completion_tokens_);
  gauge("herd_prefix_cache_hit_ratio", "Cached prompt tokens / prompt tokens, since start.",
        prompt_tokens_ > 0 ? double(cached_tokens_) / double(prompt_tokens_) : 0.0);
  gauge("herd_requests_waiting", "Requests queued for a place in the running batch.", e.n_waiting);
  gauge("herd_requests_running", "Sequences in the running batch.", e.n_running);
  gauge("herd_kv_blocks_total", "Usable KV cache blocks.", e.kv_blocks_total);
  gauge("herd_kv_blocks_free", "Free KV cache blocks (cached prefix blocks included).", e.kv_blocks_free);
  gauge("herd_kv_blocks_used", "KV cache blocks held by requests.", e.kv_blocks_total - e.kv_blocks_free);
  gauge("herd_kv_blocks_cached", "Free blocks that hold a reusable prefix.", e.kv_blocks_cached);
  counter("herd_engine_steps_total", "Engine steps.", e.n_steps);
  counter("herd_preemptions_total", "Requests preempted for lack of KV blocks.", e.n_preemptions);
  std::string out = os.str();
  ttft_.write(&out, "herd_time_to_first_token_seconds", "From request to its first token.");
  itl_.write(&out, "herd_inter_token_latency_seconds", "Between consecutive tokens of one choice.");
  latency_.write(&out, "herd_request_duration_seconds", "From request to its last byte.");
  return out;
}

}  // namespace herd_serve
