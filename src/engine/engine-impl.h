// The state behind herd::Engine. The API calls (engine.cpp) run on callers' threads; the worker
// thread runs the steps (worker.cpp) and branches samples and scores prompts (forks.cpp). The
// scheduler, the KV manager and the live requests belong to the worker alone; the mutex guards only
// the inbox, the cancel list and the event channels.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "engine/live-request.h"
#include "engine/loaded-model.h"
#include "engine/scheduler.h"
#include "herd/engine.h"

namespace herd {

struct Engine::Impl {
  std::unique_ptr<LoadedModel> m;
  std::unique_ptr<Tokenizer> tokenizer;  // optional: text in and out
  std::unique_ptr<KvCacheManager> kv;
  std::unique_ptr<Scheduler> scheduler;
  int64_t kv_bytes_per_token = 0;

  std::mutex mu;
  std::condition_variable work_cv, event_cv;
  std::deque<std::unique_ptr<Live>> inbox;
  std::unordered_set<RequestId> cancels;
  std::unordered_map<RequestId, std::deque<Event>> channels;  // each request's undelivered events
  bool stopping = false;
  RequestId next_id = 1;

  std::unordered_map<RequestId, std::unique_ptr<Live>> live;  // the worker's
  std::atomic<int32_t> stat_free{0}, stat_cached{0}, stat_running{0}, stat_waiting{0};
  std::atomic<int64_t> stat_steps{0}, stat_preemptions{0};
  std::thread worker;


  static std::unique_ptr<Impl> open(ModelFiles&& files, const std::string& tokenizer_dir, const EngineOptions& o);

  // --- the worker thread (worker.cpp) ---
  void loop();
  void step();
  // What a sequence emits once its next logits row is in: its prompt's logprobs, its forks, and its
  // next token (sampled from `logits`, or `picked` on the device).
  void emit_step(Live& l, std::span<const float> logits, int32_t picked);
  // Appends a token to l (sampled from `logits`, or `picked` on the device), emits it, and ends
  // the request at a stop or its length.
  void take_token(Live& l, std::span<const float> logits, int32_t picked = -1);
  void emit(RequestId id, Event e);
  // Ends a request: its last text, usage and reason, its unbranched samples, its blocks freed.
  void finish(Live& l, FinishReason reason, std::string error = {});
  // A running request, or a sample that has not branched off its request yet.
  void cancel_now(RequestId id);
  void publish_stats();

  // --- samples and prompt scores (forks.cpp) ---
  // A sibling sample of `parent`, which has computed its prompt and not yet taken a token.
  void fork(const Live& parent, const Fork& f, std::span<const float> logits);
  // Row r of the step's logits: f32[n_vocab].
  using LogitsRow = std::function<std::span<const float>(size_t r)>;
  // The chunk's rows cover its last n_rows positions; the row of position p scores prompt token
  // p + 1, kept from logprobs_from on. A chunk recomputed after preemption scores nothing twice:
  // tokens are appended in order, once. Throws for a row that is not finite.
  static void collect_prompt_logprobs(Live& l, const ScheduledSeq& item, size_t first_row, size_t n_rows,
                                      const LogitsRow& logits_row);
};

// Whether every value of a logits row is finite: rows with a NaN or an infinity yield no token.
bool all_finite(std::span<const float> row);

}  // namespace herd
