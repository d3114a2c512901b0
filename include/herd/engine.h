// The serving engine: many requests at once over a paged KV cache, with continuous batching.
// Submit from any thread; the engine steps on its own thread and streams events back.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "herd/chat.h"
#include "herd/export.h"
#include "herd/model.h"
#include "herd/status.h"
#include "herd/tokenizer.h"

namespace herd {

struct EngineOptions {
  std::string device = "auto";    // "auto", "cpu" or "cuda"
  int n_threads = 0;              // CPU threads; 0 = one per hardware thread
  float meta_rope_factor = 8.0f;  // see ModelOptions
  bool exact = false;             // see ModelOptions
  std::string kv_dtype = "auto";  // see ModelOptions
  int tensor_parallel = 1;        // see ModelOptions
  std::optional<ProcessGroup> process_group;  // see ModelOptions
  // KV cache budget in bytes; 0 = kv_memory_fraction of the memory free after the weights
  // (1 GiB when the backend cannot tell), at most 4 full contexts of the model.
  int64_t kv_memory = 0;
  double kv_memory_fraction = 0.5;
  int32_t block_size = 16;         // tokens per KV block
  int32_t max_batch_tokens = 512;  // token budget of one step (decode tokens + prefill chunks)
  int32_t max_seqs = 256;          // most requests running at once
  // Requests that may wait for a place among the max_seqs running ones: submit() refuses a request
  // that would make the engine hold more than max_seqs + max_queued unfinished requests (each
  // sample counted) with resource_exhausted, so a server can answer 429. 0: no bound.
  int32_t max_queued = 0;
};

// How a request picks its tokens (docs/sampling.md). Unset fields take the model's
// generation_config.json defaults when it has them (its do_sample, temperature, top_p, top_k),
// and greedy decoding otherwise. temperature 0 is greedy.
struct SamplingOptions {
  std::optional<float> temperature;
  std::optional<int32_t> top_k;   // 0: off
  std::optional<float> top_p;     // 1: off
  float min_p = 0.0f;             // 0: off
  float repetition_penalty = 1.0f;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  std::optional<uint64_t> seed;   // unset: a fresh random seed per request
  std::vector<std::string> stop;  // stop strings, matched across token boundaries, not emitted
  int32_t logprobs = 0;           // > 0: each token event carries its logprob and this many alternatives
};

// The prompt is the first of these that is set: token ids, text, or a conversation.
struct GenerateRequest {
  std::vector<int32_t> prompt;  // token ids, used as given
  std::string text;             // encoded by the model's tokenizer, with BOS when the model adds one
  // Rendered in the model's prompt format by render_prompt_ids (special-token text inside message
  // content stays plain text), with the tokenizer the engine loaded.
  std::optional<Conversation> conversation;
  int max_tokens = 16;          // >= 1
  bool ignore_eos = false;      // keep going past end-of-sequence ids (benchmarks)
  // The logprob of each prompt token given those before it (evaluation scores choices this
  // way), delivered in one Event::Type::prompt before the first token.
  bool prompt_logprobs = false;
  // The first prompt token to score (>= 1). The tokens before position from - 1 may then come
  // from the prefix cache, so a shared context (multiple-choice evaluation: one request per
  // choice) is computed once; only tokens from .. n-1 are scored and returned.
  int prompt_logprobs_from = 1;
  // Several samples of one prompt: the prompt is computed once and its KV blocks shared (copied
  // on first write). Sample i has RequestId first + i and seed + i; only sample 0 carries
  // prompt logprobs. generate() takes 1 only.
  int n_samples = 1;
  SamplingOptions sampling;
};

enum class FinishReason { stop, length, cancelled, error };
HERD_API const char* finish_reason_name(FinishReason r);  // "stop", "length", ...

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_prompt_tokens = 0;
};

struct Logprob {
  int32_t token = -1;
  float logprob = 0.0f;  // natural log of the probability under the raw logits (before sampling)
};

struct Event {
  enum class Type { prompt, token, finished };
  Type type = Type::token;
  int32_t token = -1;  // Type::token: the new id
  float logprob = 0.0f;                 // with SamplingOptions::logprobs > 0
  std::vector<Logprob> top_logprobs;    // the most likely alternatives, best first
  // Type::prompt: prompt tokens prompt_logprobs_from .. n-1 (token 0 has no context)
  std::vector<Logprob> prompt_logprobs;
  std::string text;    // UTF-8 that became complete with this event ("" without a tokenizer)
  FinishReason finish_reason = FinishReason::stop;  // Type::finished
  Usage usage;                                      // Type::finished
  std::string error;                                // FinishReason::error: why
  // FinishReason::stop: the end-of-sequence id that ended the request (for Llama 3.1,
  // <|eot_id|> ends a turn and <|eom_id|> asks for a tool's result), or -1 when a stop string did.
  int32_t stop_token = -1;
  std::string stop_string;  // FinishReason::stop by a stop string: which one
};

struct GenerateResult {
  std::vector<Logprob> prompt_logprobs;  // with GenerateRequest::prompt_logprobs
  std::vector<int32_t> ids;
  std::vector<float> logprobs;  // per id, with SamplingOptions::logprobs > 0
  std::string text;
  FinishReason finish_reason = FinishReason::stop;
  Usage usage;
  int32_t stop_token = -1;  // as in Event
  std::string stop_string;
};

struct EngineStats {
  int32_t block_size = 0;
  int32_t kv_blocks_total = 0;  // usable blocks (the null block excluded)
  int32_t kv_blocks_free = 0;    // free blocks, cached ones included (evicted when needed)
  int32_t kv_blocks_cached = 0;  // blocks the prefix cache can hand to a matching prompt
  int64_t kv_capacity_tokens = 0;
  int64_t kv_bytes_per_token = 0;
  int32_t n_running = 0, n_waiting = 0;
  int64_t n_steps = 0, n_preemptions = 0;
};

using RequestId = uint64_t;

class HERD_API Engine {
 public:
  static Status load(const std::string& path, const EngineOptions& options, std::unique_ptr<Engine>* out);
  // A random-weight model made in memory (benchmarks at full size without files; no tokenizer).
  static Status load_synthetic(const SyntheticModelSpec& spec, const EngineOptions& options,
                               std::unique_ptr<Engine>* out);
  // Stops stepping; requests still in flight end with FinishReason::cancelled.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const ModelInfo& info() const;
  EngineStats stats() const;
  // Whether the model had a tokenizer (in its directory, or inside its GGUF file): then events
  // carry text.
  bool has_tokenizer() const;
  // The engine's tokenizer (null without one), for encoding, decoding and rendering prompts
  // without loading it again. It lives as long as the engine.
  const Tokenizer* tokenizer() const;

  // Queues a request (with n_samples > 1, its samples have ids *id .. *id + n_samples - 1).
  // invalid_input when it can never run (prompt + max_tokens beyond the model's context, an id
  // outside the vocabulary, text without a tokenizer, a bad option); resource_exhausted when it
  // needs more than the whole KV cache, or when max_queued requests are already waiting.
  Status submit(const GenerateRequest& request, RequestId* id);

  // Reading events. Any thread may read, but each request's events go to one reader at a time;
  // events of one request arrive in order and end with one Type::finished event, after which the
  // request is forgotten. An event wakes only the thread waiting on its request.
  //
  // Waits for the request's next event. False once its finished event has been returned, or for
  // an unknown or released id.
  bool next_event(RequestId id, Event* event);
  // Waits at most `timeout` for the next event of any of `ids` and returns the id it belongs to;
  // nullopt on timeout, or at once when none of `ids` has events left to read. One thread can
  // serve many requests this way, and a server can check for gone clients between waits.
  std::optional<RequestId> wait_any(std::span<const RequestId> ids, std::chrono::milliseconds timeout, Event* event);
  // Ends a request: its blocks are freed before the engine's next step; it finishes as cancelled
  // (its finished event is still delivered). Unknown or finished ids are ignored.
  void cancel(RequestId id);
  // The caller will read no more of this request's events (its client went away): cancels it if
  // it runs, frees its blocks before the next step, and drops its events, read or not.
  void release(RequestId id);
  // submit + wait: the simple blocking call.
  Status generate(const GenerateRequest& request, GenerateResult* result);

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace herd
