// herd::Engine: a worker thread steps the scheduler and the model; callers submit, cancel and
// read events from any thread. The scheduler, the KV manager and the sequences belong to the
// worker alone; the mutex guards only the inbox, the cancel list and the event channels.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/check.h"
#include "engine/guarded.h"
#include "engine/loaded-model.h"
#include "engine/scheduler.h"
#include "herd/engine.h"
#include "herd/tokenizer.h"

namespace herd {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::stop: return "stop";
    case FinishReason::length: return "length";
    case FinishReason::cancelled: return "cancelled";
    case FinishReason::error: return "error";
  }
  return "?";
}

namespace {

constexpr int64_t kDefaultKvBytes = int64_t(1) << 30;  // when the backend cannot tell its free memory
constexpr int64_t kDefaultContexts = 4;

// A sequence plus what only the engine needs: its detokenizer.
struct Live {
  Sequence seq;
  std::unique_ptr<TokenStream> text;
  bool ignore_eos = false;
};

}  // namespace

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
  std::atomic<int32_t> stat_free{0}, stat_running{0}, stat_waiting{0};
  std::atomic<int64_t> stat_steps{0}, stat_preemptions{0};
  std::thread worker;

  void emit(RequestId id, Event e) {
    {
      std::lock_guard lock(mu);
      channels[id].push_back(std::move(e));
    }
    event_cv.notify_all();
  }

  void finish(Live& l, FinishReason reason, std::string error = {}) {
    Event e;
    e.type = Event::Type::finished;
    e.finish_reason = reason;
    e.error = std::move(error);
    if (l.text) l.text->flush(&e.text);
    e.usage.prompt_tokens = l.seq.n_prompt;
    e.usage.completion_tokens = l.seq.n_generated();
    const RequestId id = l.seq.id;
    scheduler->remove(&l.seq);
    live.erase(id);
    publish_stats();  // before the event, so a caller who saw it also sees the blocks freed
    emit(id, std::move(e));
  }

  void loop() {
    for (;;) {
      std::deque<std::unique_ptr<Live>> arrived;
      std::unordered_set<RequestId> cancelled;
      {
        std::unique_lock lock(mu);
        const bool busy = !live.empty();
        work_cv.wait(lock, [&] { return stopping || busy || !inbox.empty() || !cancels.empty(); });
        if (stopping) break;
        arrived.swap(inbox);
        cancelled.swap(cancels);
      }
      for (auto& l : arrived) {
        scheduler->add(&l->seq);
        const RequestId id = l->seq.id;
        live.emplace(id, std::move(l));
      }
      for (RequestId id : cancelled)
        if (auto it = live.find(id); it != live.end()) finish(*it->second, FinishReason::cancelled);
      if (!live.empty()) step();
      publish_stats();
    }
    while (!live.empty()) finish(*live.begin()->second, FinishReason::cancelled);
  }

  void step() {
    const std::vector<ScheduledSeq> work = scheduler->schedule();
    if (work.empty()) return;
    std::vector<int32_t> next;
    try {
      next = m->llama->forward_greedy(scheduler->make_batch(work));
    } catch (const std::exception& e) {
      // A failed step fails the requests in it; the engine stays up for the others.
      for (const ScheduledSeq& item : work) finish(*live.at(item.seq->id), FinishReason::error, e.what());
      return;
    }
    Scheduler::advance(work);
    ++stat_steps;
    size_t row = 0;
    for (const ScheduledSeq& item : work) {
      if (!item.emits) continue;
      Live& l = *live.at(item.seq->id);
      const int32_t tok = next[row++];
      l.seq.tokens.push_back(tok);
      const auto& eos = m->info.eos_ids;
      const bool stop = !l.ignore_eos && std::find(eos.begin(), eos.end(), tok) != eos.end();
      Event e;
      e.token = tok;
      // The stop token's own text ("<|eot_id|>") is not part of the reply. An id the model made
      // may still be unknown to a tokenizer smaller than the model's vocabulary: no text then.
      if (l.text && !stop && !l.text->push(tok, &e.text)) e.text.clear();
      emit(l.seq.id, std::move(e));
      if (stop) finish(l, FinishReason::stop);
      else if (l.seq.n_generated() >= l.seq.max_tokens) finish(l, FinishReason::length);
    }
  }

  static std::unique_ptr<Impl> open(ModelFiles&& files, const std::string& tokenizer_dir, const EngineOptions& o);

  void publish_stats() {
    stat_free = kv->n_free_blocks();
    stat_running = scheduler->n_running();
    stat_waiting = scheduler->n_waiting();
    stat_preemptions = scheduler->n_preemptions();
  }
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Engine::~Engine() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->work_cv.notify_all();
  if (impl_->worker.joinable()) impl_->worker.join();
}

Status Engine::load(const std::string& path, const EngineOptions& o, std::unique_ptr<Engine>* out) {
  return guarded([&] { out->reset(new Engine(Impl::open(load_model_files(path, o.meta_rope_factor), path, o))); });
}

Status Engine::load_synthetic(const SyntheticModelSpec& spec, const EngineOptions& o, std::unique_ptr<Engine>* out) {
  return guarded([&] { out->reset(new Engine(Impl::open(synthetic_files(spec), "", o))); });
}

// tokenizer_dir: where to look for a tokenizer ("" for none).
std::unique_ptr<Engine::Impl> Engine::Impl::open(ModelFiles&& files, const std::string& tokenizer_dir,
                                                 const EngineOptions& o) {
  HERD_REQUIRE(o.kv_memory >= 0, "--kv-memory must not be negative");
  HERD_REQUIRE(o.kv_memory_fraction > 0 && o.kv_memory_fraction <= 1, "the KV memory fraction must lie in (0, 1]");
  auto impl = std::make_unique<Impl>();
  Impl& e = *impl;
  e.m = load_model(std::move(files), o.device, o.n_threads, o.block_size,
                   [&](const ModelConfig& c, Backend& be) {
                     e.kv_bytes_per_token = LlamaModel::kv_bytes_per_token(c, be.kv_dtype());
                     // By default a share of free memory, but no more than a few full contexts.
                     const int64_t free = int64_t(be.free_memory());
                     const int64_t share = free > 0 ? int64_t(double(free) * o.kv_memory_fraction) : kDefaultKvBytes;
                     const int64_t budget =
                         o.kv_memory > 0 ? o.kv_memory
                                         : std::min(share, kDefaultContexts * c.n_ctx_train * e.kv_bytes_per_token);
                     const int64_t block_bytes = e.kv_bytes_per_token * o.block_size;
                     const int64_t n = std::min<int64_t>(budget / block_bytes, INT32_MAX / o.block_size - 1);
                     HERD_REQUIRE(n >= 1, "--kv-memory of ", budget, " bytes holds no block of ", o.block_size,
                                  " tokens (", block_bytes, " bytes); raise it");
                     return int32_t(n + 1);  // + the null block
                   });
  e.kv = std::make_unique<KvCacheManager>(e.m->n_blocks, o.block_size);
  e.scheduler = std::make_unique<Scheduler>(*e.kv, o.max_batch_tokens, o.max_seqs);
  e.m->info.max_context = std::min(e.m->info.n_ctx_train, e.kv->capacity_tokens());
  // The tokenizer is optional: without one the engine speaks ids only.
  std::unique_ptr<Tokenizer> tok;
  if (!tokenizer_dir.empty() && Tokenizer::load(tokenizer_dir, &tok).is_ok()) e.tokenizer = std::move(tok);
  e.publish_stats();
  e.worker = std::thread([&e] { e.loop(); });
  return impl;
}

const ModelInfo& Engine::info() const { return impl_->m->info; }

bool Engine::has_tokenizer() const { return impl_->tokenizer != nullptr; }

EngineStats Engine::stats() const {
  const Impl& e = *impl_;
  EngineStats s;
  s.block_size = e.kv->block_size();
  s.kv_blocks_total = e.kv->n_usable_blocks();
  s.kv_blocks_free = e.stat_free;
  s.kv_capacity_tokens = e.kv->capacity_tokens();
  s.kv_bytes_per_token = e.kv_bytes_per_token;
  s.n_running = e.stat_running;
  s.n_waiting = e.stat_waiting;
  s.n_steps = e.stat_steps;
  s.n_preemptions = e.stat_preemptions;
  return s;
}

Status Engine::submit(const GenerateRequest& r, RequestId* id) {
  return guarded([&] {
    Impl& e = *impl_;
    auto l = std::make_unique<Live>();
    if (!r.prompt.empty()) {
      l->seq.tokens = r.prompt;
    } else {
      HERD_REQUIRE(e.tokenizer, "the request has text but the model directory has no tokenizer; send token ids");
      HERD_REQUIRE(!r.text.empty(), "the request has neither token ids nor text");
      const Status s = e.tokenizer->encode(r.text, /*allow_special=*/false, e.tokenizer->bos_id() >= 0, &l->seq.tokens);
      HERD_REQUIRE(s.is_ok(), s.message());
    }
    check_token_ids(l->seq.tokens, e.m->info.n_vocab);
    HERD_REQUIRE(r.max_tokens >= 1, "max_tokens must be at least 1, got ", r.max_tokens);
    const int64_t need = int64_t(l->seq.tokens.size()) + r.max_tokens;
    HERD_REQUIRE(need <= e.m->info.n_ctx_train, l->seq.tokens.size(), " prompt tokens plus ", r.max_tokens,
                 " to generate exceed the model's context of ", e.m->info.n_ctx_train, " tokens");
    HERD_REQUIRE(need <= e.kv->capacity_tokens(), l->seq.tokens.size(), " prompt tokens plus ", r.max_tokens,
                 " to generate exceed the KV cache of ", e.kv->capacity_tokens(), " tokens; raise --kv-memory");
    l->seq.n_prompt = int64_t(l->seq.tokens.size());
    l->seq.max_tokens = r.max_tokens;
    l->ignore_eos = r.ignore_eos;
    if (e.tokenizer) l->text = std::make_unique<TokenStream>(*e.tokenizer);
    {
      std::lock_guard lock(e.mu);
      l->seq.id = l->seq.arrival = e.next_id++;
      *id = l->seq.id;
      e.channels[*id];
      e.inbox.push_back(std::move(l));
    }
    e.work_cv.notify_one();
  });
}

bool Engine::next_event(RequestId id, Event* event) {
  Impl& e = *impl_;
  std::unique_lock lock(e.mu);
  auto it = e.channels.find(id);
  if (it == e.channels.end()) return false;
  // A reference, not the iterator: other requests' channels may be added (and the map rehashed)
  // while this one waits; elements of an unordered_map stay where they are.
  std::deque<Event>& queue = it->second;
  e.event_cv.wait(lock, [&] { return !queue.empty(); });
  *event = std::move(queue.front());
  queue.pop_front();
  if (event->type == Event::Type::finished) e.channels.erase(id);
  return true;
}

void Engine::cancel(RequestId id) {
  {
    std::lock_guard lock(impl_->mu);
    impl_->cancels.insert(id);
  }
  impl_->work_cv.notify_one();
}

Status Engine::generate(const GenerateRequest& request, GenerateResult* result) {
  RequestId id;
  if (Status s = submit(request, &id); !s) return s;
  *result = {};
  Event e;
  while (next_event(id, &e)) {
    result->text += e.text;
    if (e.type == Event::Type::token) {
      result->ids.push_back(e.token);
      continue;
    }
    result->finish_reason = e.finish_reason;
    result->usage = e.usage;
    if (e.finish_reason == FinishReason::error) return Status::internal(e.error);
  }
  return Status::ok();
}

}  // namespace herd
