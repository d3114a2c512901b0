// herd::Engine's API: loading, submitting, reading events and cancelling, from any thread. The
// work itself happens on the worker thread (worker.cpp).
#include <algorithm>
#include <random>

#include "common/check.h"
#include "engine/engine-impl.h"
#include "engine/guarded.h"
#include "engine/memory-plan.h"
#include "engine/process-group.h"

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

// The request's options over the model's generation_config.json defaults (greedy without them).
SamplingParams resolve(const SamplingOptions& o, const GenerationDefaults& g) {
  const bool sample = g.do_sample.value_or(false);
  SamplingParams p;
  p.temperature = o.temperature.value_or(sample ? g.temperature.value_or(1.0f) : 0.0f);
  p.top_k = o.top_k.value_or(sample ? g.top_k.value_or(0) : 0);
  p.top_p = o.top_p.value_or(sample ? g.top_p.value_or(1.0f) : 1.0f);
  p.min_p = o.min_p;
  p.repetition_penalty = o.repetition_penalty;
  p.frequency_penalty = o.frequency_penalty;
  p.presence_penalty = o.presence_penalty;
  p.seed = o.seed ? *o.seed : std::random_device{}() * 0x100000001ull + std::random_device{}();
  validate(p);
  return p;
}

}  // namespace

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
  return guarded([&] {
    ModelFiles files = load_model_files(path, o.meta_rope_factor, process_shard(o.process_group));
    out->reset(new Engine(Impl::open(std::move(files), path, o)));
  });
}

Status Engine::load_synthetic(const SyntheticModelSpec& spec, const EngineOptions& o, std::unique_ptr<Engine>* out) {
  return guarded([&] { out->reset(new Engine(Impl::open(synthetic_files(spec), "", o))); });
}

// tokenizer_dir: where to look for a tokenizer ("" for none).
std::unique_ptr<Engine::Impl> Engine::Impl::open(ModelFiles&& files, const std::string& tokenizer_dir,
                                                 const EngineOptions& o) {
  HERD_REQUIRE(o.kv_memory >= 0, "the KV memory budget must not be negative");
  HERD_REQUIRE(o.kv_memory_fraction > 0 && o.kv_memory_fraction <= 1, "the KV memory fraction must lie in (0, 1]");
  auto impl = std::make_unique<Impl>();
  Impl& e = *impl;
  e.m = load_model(std::move(files), {o.device, o.n_threads, o.exact, kv_fp8_named(o.kv_dtype)}, o.tensor_parallel, o.process_group, o.block_size,
                   [&](const ModelConfig& c, Backend& be) {
                     // Each rank holds its KV heads' share; ranks that are threads share this process's memory.
                     const bool processes = o.process_group && o.process_group->world_size > 1;
                     const int ranks = processes ? o.process_group->world_size : o.tensor_parallel;
                     const int64_t free = int64_t(be.free_memory()) / (processes ? 1 : ranks);
                     const KvPool pool = size_kv_pool(c, be.kv_dtype(), free, o.kv_memory, o.kv_memory_fraction,
                                                      o.block_size, ranks);
                     e.kv_bytes_per_token = pool.bytes_per_token;
                     return pool.n_blocks;
                   });
  HERD_REQUIRE(o.max_queued >= 0, "the request queue bound must not be negative");
  e.max_unfinished = o.max_queued > 0 ? int64_t(o.max_seqs) + o.max_queued : 0;
  e.kv = std::make_unique<KvCacheManager>(e.m->n_blocks, o.block_size);
  e.scheduler = std::make_unique<Scheduler>(*e.kv, o.max_batch_tokens, o.max_seqs);
  e.m->info.max_context = std::min(e.m->info.n_ctx_train, e.kv->capacity_tokens());
  // The tokenizer is optional: without one the engine speaks ids only.
  std::unique_ptr<Tokenizer> tok;
  if (!tokenizer_dir.empty()) {
    const Status loaded = Tokenizer::load(tokenizer_dir, &tok);
    if (loaded) e.tokenizer = std::move(tok);
    // A GGUF file's vocabulary is part of the model, so a broken one is an error, not "no tokenizer".
    else if (e.m->files.weights.gguf) fail_input(loaded.message());
  }
  e.publish_stats();
  e.worker = std::thread([&e] { e.loop(); });
  return impl;
}

const ModelInfo& Engine::info() const { return impl_->m->info; }

bool Engine::has_tokenizer() const { return impl_->tokenizer != nullptr; }

const Tokenizer* Engine::tokenizer() const { return impl_->tokenizer.get(); }

EngineStats Engine::stats() const {
  const Impl& e = *impl_;
  EngineStats s;
  s.block_size = e.kv->block_size();
  s.kv_blocks_total = e.kv->n_usable_blocks();
  s.kv_blocks_free = e.stat_free;
  s.kv_blocks_cached = e.stat_cached;
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
    } else if (!r.text.empty()) {
      HERD_REQUIRE(e.tokenizer, "the request has text but the model has no tokenizer; send token ids");
      const Status s = e.tokenizer->encode(r.text, /*allow_special=*/false, e.tokenizer->adds_bos(), &l->seq.tokens);
      HERD_REQUIRE(s.is_ok(), s.message());
    } else {
      HERD_REQUIRE(r.conversation, "the request has no token ids, text or conversation");
      HERD_REQUIRE(e.tokenizer, "the request has a conversation but the model has no tokenizer; send token ids");
      const Status s = render_prompt_ids(*r.conversation, *e.tokenizer, /*special_in_content=*/false, &l->seq.tokens);
      HERD_REQUIRE(s.is_ok(), s.message());
    }
    check_token_ids(l->seq.tokens, e.m->info.n_vocab);
    HERD_REQUIRE(r.max_tokens >= 1, "max_tokens must be at least 1, got ", r.max_tokens);
    const int64_t need = int64_t(l->seq.tokens.size()) + r.max_tokens;
    HERD_REQUIRE(need <= e.m->info.n_ctx_train, l->seq.tokens.size(), " prompt tokens plus ", r.max_tokens,
                 " to generate exceed the model's context of ", e.m->info.n_ctx_train, " tokens");
    if (need > e.kv->capacity_tokens())
      throw Error(ErrorKind::resource_exhausted,
                  str_cat(l->seq.tokens.size(), " prompt tokens plus ", r.max_tokens, " to generate exceed the KV cache of ",
                          e.kv->capacity_tokens(), " tokens; give the engine more KV memory"));
    l->seq.n_prompt = int64_t(l->seq.tokens.size());
    l->seq.max_tokens = r.max_tokens;
    l->ignore_eos = r.ignore_eos;
    const SamplingOptions& so = r.sampling;
    const SamplingParams sp = resolve(so, e.m->files.generation);
    const bool plain_greedy = sp.greedy() && !sp.penalised();
    if (!plain_greedy) l->sampler = std::make_unique<Sampler>(sp);
    HERD_REQUIRE(so.logprobs >= 0 && so.logprobs <= 20, "logprobs must lie in [0, 20], got ", so.logprobs);
    l->n_logprobs = so.logprobs;
    l->seq.prompt_logprobs = r.prompt_logprobs;
    if (r.prompt_logprobs)
      HERD_REQUIRE(r.prompt_logprobs_from >= 1 && r.prompt_logprobs_from <= int64_t(l->seq.tokens.size()),
                   "prompt_logprobs_from must lie in [1, ", l->seq.tokens.size(), "] for a prompt of ",
                   l->seq.tokens.size(), " tokens, got ", r.prompt_logprobs_from);
    l->seq.logprobs_from = r.prompt_logprobs_from;
    if (!so.stop.empty()) {
      HERD_REQUIRE(e.tokenizer, "stop strings need a tokenizer in the model directory");
      l->stops = std::make_unique<StopStringMatcher>(so.stop);
      l->stop_strings = so.stop;
    }
    HERD_REQUIRE(r.n_samples >= 1 && r.n_samples <= 256, "samples must lie in [1, 256], got ", r.n_samples);
    if (e.tokenizer) l->text = std::make_unique<TokenStream>(*e.tokenizer);
    {
      std::lock_guard lock(e.mu);
      if (e.max_unfinished > 0 && e.n_unfinished + r.n_samples > e.max_unfinished)
        throw Error(ErrorKind::resource_exhausted,
                    str_cat("the engine holds ", e.n_unfinished, " requests and admits ", e.max_unfinished,
                            " (running and queued); retry later"));
      e.n_unfinished += r.n_samples;
      l->seq.id = l->seq.arrival = e.next_id;
      *id = l->seq.id;
      // Sample i of the request has id *id + i; each draws with seed + i.
      for (int i = 0; i < r.n_samples; ++i) e.channels[e.next_id++];
      for (int i = 1; i < r.n_samples; ++i) {
        std::unique_ptr<Sampler> fork_sampler;
        if (!plain_greedy) {
          SamplingParams p = sp;
          p.seed = sp.seed + uint64_t(i);
          fork_sampler = std::make_unique<Sampler>(p);
        }
        l->forks.push_back({*id + uint64_t(i), std::move(fork_sampler)});
      }
      e.inbox.push_back(std::move(l));
    }
    e.work_cv.notify_one();
  });
}

bool Engine::next_event(RequestId id, Event* event) {
  std::unique_lock lock(impl_->mu);
  return impl_->take_event(lock, std::span(&id, 1), std::nullopt, event).has_value();
}

std::optional<RequestId> Engine::wait_any(std::span<const RequestId> ids, std::chrono::milliseconds timeout,
                                          Event* event) {
  const auto deadline = std::chrono::steady_clock::now() + std::max(timeout, std::chrono::milliseconds(0));
  std::unique_lock lock(impl_->mu);
  return impl_->take_event(lock, ids, deadline, event);
}

std::optional<RequestId> Engine::Impl::take_event(std::unique_lock<std::mutex>& lock, std::span<const RequestId> ids,
                                                  std::optional<std::chrono::steady_clock::time_point> deadline,
                                                  Event* event) {
  // The waiting reader's own condition variable, registered on each of its channels while it
  // sleeps, so an event wakes this reader and no other. emit() notifies it with mu held, so it is
  // never notified after this function has returned.
  std::condition_variable wake;
  auto set_reader = [&](std::condition_variable* cv) {
    for (RequestId id : ids)
      if (auto it = channels.find(id); it != channels.end()) it->second.reader = cv;
  };
  for (bool expired = false;;) {
    bool any = false;
    for (RequestId id : ids) {
      auto it = channels.find(id);
      if (it == channels.end()) continue;
      any = true;
      if (it->second.events.empty()) continue;
      *event = std::move(it->second.events.front());
      it->second.events.pop_front();
      if (event->type == Event::Type::finished) channels.erase(it);
      return id;
    }
    // An event that came with the timeout was taken above.
    if (!any || expired) return std::nullopt;
    set_reader(&wake);
    if (deadline) expired = wake.wait_until(lock, *deadline) == std::cv_status::timeout;
    else wake.wait(lock);
    set_reader(nullptr);
  }
}

void Engine::cancel(RequestId id) {
  {
    std::lock_guard lock(impl_->mu);
    impl_->cancels.insert(id);
  }
  impl_->work_cv.notify_one();
}

void Engine::release(RequestId id) {
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->channels.find(id);
    if (it == impl_->channels.end()) return;  // finished and read, or never submitted
    if (it->second.reader) it->second.reader->notify_one();  // a reader on another thread sees it gone
    impl_->channels.erase(it);
    impl_->cancels.insert(id);
  }
  impl_->work_cv.notify_one();
}

Status Engine::generate(const GenerateRequest& request, GenerateResult* result) {
  if (request.n_samples != 1) return Status::invalid_input("generate() takes one sample; submit several and read each");
  RequestId id;
  if (Status s = submit(request, &id); !s) return s;
  *result = {};
  Event e;
  while (next_event(id, &e)) {
    result->text += e.text;
    if (e.type == Event::Type::prompt) {
      result->prompt_logprobs = std::move(e.prompt_logprobs);
      continue;
    }
    if (e.type == Event::Type::token) {
      result->ids.push_back(e.token);
      if (request.sampling.logprobs > 0) result->logprobs.push_back(e.logprob);
      continue;
    }
    result->finish_reason = e.finish_reason;
    result->usage = e.usage;
    result->stop_token = e.stop_token;
    result->stop_string = e.stop_string;
    if (e.finish_reason == FinishReason::error) return Status::internal(e.error);
  }
  return Status::ok();
}

}  // namespace herd
