// The state behind herd::Engine. The API calls (engine.cpp) run on callers' threads; the worker
// thread runs the steps (worker.cpp) and branches samples and scores prompts (forks.cpp). The
// scheduler, the KV manager and the live requests belong to the worker alone; the mutex guards only
// the inbox, the cancel list and the event channels.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
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

  // A request's undelivered events, and the reader waiting on it (at most one; see
  // Engine::wait_any), which alone is woken when an event arrives.
  struct Channel {
    std::deque<Event> events;
    std::condition_variable* reader = nullptr;
  };

  std::mutex mu;
  std::condition_variable work_cv;
  std::deque<std::unique_ptr<Live>> inbox;
  std::unordered_set<RequestId> cancels;
  // Every request submitted and not yet read to its end. A request without a channel was
  // released: its events are dropped.
  std::unordered_map<RequestId, Channel> channels;
  bool stopping = false;
  RequestId next_id = 1;
  // Requests (each sample counted) submitted whose finished event has not been emitted yet, and
  // how many of them submit() admits: max_seqs running plus max_queued waiting (0: no bound).
  int64_t n_unfinished = 0;
  int64_t max_unfinished = 0;

  std::unordered_map<RequestId, std::unique_ptr<Live>> live;  // the worker's
  std::atomic<int32_t> stat_free{0}, stat_cached{0}, stat_running{0}, stat_waiting{0};
  std::atomic<int64_t> stat_steps{0}, stat_preemptions{0};
  std::thread worker;


  static std::unique_ptr<Impl> open(ModelFiles&& files, const std::string& tokenizer_dir, const EngineOptions& o);
  // The API's wait: the next event of any of ids, waiting until `deadline` (forever without one);
  // the id it belongs to, or nullopt. Called with mu held through `lock`.
  std::optional<RequestId> take_event(std::unique_lock<std::mutex>& lock, std::span<const RequestId> ids,
                                      std::optional<std::chrono::steady_clock::time_point> deadline, Event* event);

  // --- the worker thread (worker.cpp) ---
  void loop();
  void step();
  // What a step takes from its logits rows, one spec each: the prompt tokens its chunks score
  // (n_score[i] of work[i] from first_score[i]); then for each emitting sequence its unbranched
  // samples' first tokens and its own (from first_pick[i]), drawing from each one's generator.
  struct StepSpecs {
    std::vector<SampleSpec> specs;
    std::vector<size_t> first_score, n_score, first_pick;  // [work]
  };
  StepSpecs step_specs(const std::vector<ScheduledSeq>& work, const std::vector<int64_t>& rows);
  // A score spec's logprob from its logits row on the host (the backend's sample() on a device).
  static SampledToken score_on_host(const SampleSpec& spec, std::span<const float> logits);
  // A spec's token from its logits row on the host (the backend's sample() does this on a device).
  SampledToken pick_on_host(const Live& l, Sampler* sampler, const SampleSpec& spec, std::span<const float> logits);
  // What a sequence emits once its token is picked: its prompt's logprobs, its forks (with
  // picks[0, n_forks)), and its own token (picks.back()).
  void emit_step(Live& l, std::span<const SampledToken> picks);
  // Appends a picked token to l, emits it, and ends the request at a stop or its length.
  void take_token(Live& l, const SampledToken& picked);
  // Queues an event for the request's reader (dropped once the request was released).
  void emit(RequestId id, Event e);
  // Ends a request: its last text, usage and reason, its unbranched samples, its blocks freed.
  // A stop-string or end-of-sequence stop says which in l.stop_token / l.stop_string.
  void finish(Live& l, FinishReason reason, std::string error = {});
  // A running request, or a sample that has not branched off its request yet.
  void cancel_now(RequestId id);
  void publish_stats();

  // --- samples and prompt scores (forks.cpp) ---
  // A sibling sample of `parent`, which has computed its prompt and not yet taken a token.
  void fork(const Live& parent, Fork& f, const SampledToken& first);
  // Appends a chunk's prompt scores (its score specs' results, in order) to l.prompt_lp. Throws
  // for a row that is not finite.
  static void take_prompt_scores(Live& l, std::span<const SampledToken> scores);
};

// Whether every value of a logits row is finite: rows with a NaN or an infinity yield no token.
bool all_finite(std::span<const float> row);

}  // namespace herd
