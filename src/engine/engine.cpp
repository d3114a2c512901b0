// herd::Engine: a worker thread steps the scheduler and the model; callers submit, cancel and
// read events from any thread. The scheduler, the KV manager and the sequences belong to the
// worker alone; the mutex guards only the inbox, the cancel list and the event channels.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <span>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/check.h"
#include "engine/guarded.h"
#include "engine/loaded-model.h"
#include "engine/scheduler.h"
#include "herd/engine.h"
#include "herd/tokenizer.h"
#include "sampling/logprobs.h"
#include "sampling/sampler.h"
#include "sampling/stop-strings.h"

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

// A sample still to branch off a request when its prompt is done.
struct Fork {
  RequestId id;
  std::optional<SamplingParams> sampler;  // nullopt: plain greedy
};

// A sequence plus what only the engine needs: its detokenizer and how it picks tokens.
struct Live {
  Sequence seq;
  std::unique_ptr<TokenStream> text;
  std::unique_ptr<Sampler> sampler;          // null: plain greedy, picked on the device
  std::unique_ptr<StopStringMatcher> stops;  // null: no stop strings
  std::vector<std::string> stop_strings;     // what `stops` matches, for forked samples
  std::vector<Fork> forks;                   // the request's other samples, before they branch
  int32_t n_logprobs = 0;
  std::vector<Logprob> prompt_lp;  // prompt tokens 1.. scored so far (token 0 has no context)
  bool ignore_eos = false;

  // Forks draw from the parent's logits row, so a request with samples to branch needs it too.
  bool needs_logits() const { return sampler != nullptr || n_logprobs > 0 || !forks.empty(); }
  std::span<const int32_t> prompt() const { return {seq.tokens.data(), size_t(seq.n_prompt)}; }
  std::span<const int32_t> generated() const {
    return {seq.tokens.data() + seq.n_prompt, size_t(seq.n_generated())};
  }
};

bool all_finite(std::span<const float> row) {
  return std::all_of(row.begin(), row.end(), [](float v) { return std::isfinite(v); });
}

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
    // What the detokenizer still holds, and then what the stop matcher held back, unless a stop
    // string already ended the text.
    if (l.text) l.text->flush(&e.text);
    if (l.stops) e.text = l.stops->stopped() ? "" : l.stops->feed(e.text).text + l.stops->flush();
    e.usage.prompt_tokens = l.seq.n_prompt;
    e.usage.completion_tokens = l.seq.n_generated();
    e.usage.cached_prompt_tokens = std::min(l.seq.n_cached, l.seq.n_prompt);
    // Samples that never branched off end with their request.
    for (const Fork& f : l.forks) {
      Event fe;
      fe.type = Event::Type::finished;
      fe.finish_reason = reason;
      fe.error = e.error;
      fe.usage.prompt_tokens = l.seq.n_prompt;
      emit(f.id, std::move(fe));
    }
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
      for (RequestId id : cancelled) cancel_now(id);
      if (!live.empty()) step();
      publish_stats();
    }
    while (!live.empty()) finish(*live.begin()->second, FinishReason::cancelled);
  }

  void step() {
    const std::vector<ScheduledSeq> work = scheduler->schedule();
    if (work.empty()) return;
    // Plain greedy steps pick tokens on the device; anything else needs the logits rows. Which
    // rows each sequence has is read before advance() moves its n_computed.
    std::vector<int64_t> rows(work.size());
    std::vector<bool> scores(work.size());
    bool want_logits = false;
    for (size_t i = 0; i < work.size(); ++i) {
      rows[i] = work[i].n_rows();
      scores[i] = work[i].scores_prompt();
      want_logits |= (scores[i] && rows[i] > 0) || (work[i].emits && live.at(work[i].seq->id)->needs_logits());
    }
    std::vector<float> logits;  // [n_rows, n_vocab] when want_logits
    std::vector<int32_t> next;  // [n_rows] otherwise
    try {
      const Batch batch = scheduler->make_batch(work);
      std::vector<std::pair<int32_t, int32_t>> copies;  // copy on write, before anything is written
      for (const auto& c : scheduler->copies()) copies.emplace_back(c.from, c.to);
      m->llama->copy_blocks(copies);
      if (want_logits) logits = m->llama->forward(batch);
      else next = m->llama->forward_greedy(batch);
    } catch (const std::exception& e) {
      // A failed step fails the requests in it; the engine stays up for the others.
      for (const ScheduledSeq& item : work) finish(*live.at(item.seq->id), FinishReason::error, e.what());
      return;
    }
    scheduler->advance(work);
    ++stat_steps;
    const size_t n_vocab = size_t(m->info.n_vocab);
    auto logits_row = [&](size_t r) { return std::span<const float>(logits.data() + r * n_vocab, n_vocab); };
    size_t row = 0;  // the first logits row of the current sequence
    for (size_t i = 0; i < work.size(); ++i) {
      const ScheduledSeq& item = work[i];
      Live& l = *live.at(item.seq->id);
      const size_t n_rows = size_t(rows[i]);
      row += n_rows;
      // A request that fails here (non-finite logits, a sampler error) ends alone; the step goes on.
      // A sequence that emits has a row (its last), so row >= 1 there.
      const RequestId id = item.seq->id;
      try {
        if (scores[i]) collect_prompt_logprobs(l, item, row - n_rows, n_rows, logits_row);
        if (item.emits)
          emit_step(l, want_logits ? logits_row(row - 1) : std::span<const float>{}, want_logits ? -1 : next[row - 1]);
      } catch (const std::exception& e) {
        if (auto it = live.find(id); it != live.end()) finish(*it->second, FinishReason::error, e.what());
      }
    }
  }

  // What a sequence emits once its next logits row is in: its prompt's logprobs, its forks, and its
  // next token (sampled from `logits`, or `picked` on the device).
  void emit_step(Live& l, std::span<const float> logits, int32_t picked) {
    if (l.seq.prompt_logprobs && l.seq.n_generated() == 0) {
      Event p;
      p.type = Event::Type::prompt;
      p.prompt_logprobs = std::move(l.prompt_lp);
      emit(l.seq.id, std::move(p));
    }
    // The other samples of the request branch off here, before the first one takes its token:
    // they share its blocks and draw their first tokens from the same logits row.
    if (!l.forks.empty()) {
      for (const Fork& f : l.forks) fork(l, f, logits);
      l.forks.clear();
    }
    take_token(l, logits, picked);
  }

  // Appends a token to l (sampled from `logits`, or `picked` on the device), emits it, and ends
  // the request at a stop or its length.
  void take_token(Live& l, std::span<const float> logits, int32_t picked = -1) {
    // The device marks a row with a NaN or an infinity by -1; a host row is checked here.
    if (logits.empty() ? picked < 0 : !all_finite(logits))
      return finish(l, FinishReason::error, non_finite_logits(int64_t(l.seq.tokens.size()) - 1));
    Event e;
    e.token = picked;
    if (!logits.empty()) {
      e.token = l.sampler ? l.sampler->sample(logits, l.prompt(), l.generated())
                          : int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      if (l.n_logprobs > 0) {
        const PositionLogprobs lp = position_logprobs(logits, e.token, l.n_logprobs);
        e.logprob = lp.token.logprob;
        for (const auto& t : lp.top) e.top_logprobs.push_back({t.id, t.logprob});
      }
    }
    l.seq.tokens.push_back(e.token);
    const auto& eos = m->info.eos_ids;
    const bool eos_hit = !l.ignore_eos && std::find(eos.begin(), eos.end(), e.token) != eos.end();
    // The stop token's own text ("<|eot_id|>") is not part of the reply. An id the model made
    // may still be unknown to a tokenizer smaller than the model's vocabulary: no text then.
    if (l.text && !eos_hit && !l.text->push(e.token, &e.text)) e.text.clear();
    bool stop_hit = false;
    if (l.stops) {
      StopStep st = l.stops->feed(e.text);
      e.text = std::move(st.text);
      stop_hit = st.stop.has_value();
    }
    emit(l.seq.id, std::move(e));
    if (eos_hit || stop_hit) finish(l, FinishReason::stop);
    else if (l.seq.n_generated() >= l.seq.max_tokens) finish(l, FinishReason::length);
  }

  // A sibling sample of `parent`, which has computed its prompt and not yet taken a token.
  void fork(const Live& parent, const Fork& f, std::span<const float> logits) {
    auto child = std::make_unique<Live>();
    child->seq = parent.seq;
    child->seq.id = f.id;
    child->seq.prompt_logprobs = false;  // the first sample carries them
    if (f.sampler) child->sampler = std::make_unique<Sampler>(*f.sampler);
    if (parent.stops) child->stops = std::make_unique<StopStringMatcher>(parent.stop_strings);
    if (tokenizer) child->text = std::make_unique<TokenStream>(*tokenizer);
    child->stop_strings = parent.stop_strings;
    child->n_logprobs = parent.n_logprobs;
    child->ignore_eos = parent.ignore_eos;
    Live& c = *child;
    live.emplace(f.id, std::move(child));
    scheduler->add_fork(parent.seq, &c.seq);
    take_token(c, logits);
  }

  // The chunk's rows cover its last n_rows positions; the row of position p scores prompt token
  // p + 1, kept from logprobs_from on. A chunk recomputed after preemption scores nothing twice:
  // tokens are appended in order, once.
  template <typename RowFn>
  static void collect_prompt_logprobs(Live& l, const ScheduledSeq& item, size_t first_row, size_t n_rows,
                                      const RowFn& logits_row) {
    const int64_t first_pos = item.seq->n_computed - int64_t(n_rows);  // n_computed was advanced already
    for (int64_t j = 0; j < int64_t(n_rows); ++j) {
      const int64_t scored = first_pos + j + 1;
      if (scored >= l.seq.n_prompt || scored != l.seq.logprobs_from + int64_t(l.prompt_lp.size())) continue;
      const int32_t token = l.seq.tokens[size_t(scored)];
      if (!all_finite(logits_row(first_row + size_t(j)))) throw Error(ErrorKind::internal, non_finite_logits(scored - 1));
      l.prompt_lp.push_back({token, position_logprobs(logits_row(first_row + size_t(j)), token, 0).token.logprob});
    }
  }

  static std::unique_ptr<Impl> open(ModelFiles&& files, const std::string& tokenizer_dir, const EngineOptions& o);

  // A running request, or a sample that has not branched off its request yet.
  void cancel_now(RequestId id) {
    if (auto it = live.find(id); it != live.end()) return finish(*it->second, FinishReason::cancelled);
    for (auto& [parent_id, l] : live) {
      auto f = std::find_if(l->forks.begin(), l->forks.end(), [&](const Fork& x) { return x.id == id; });
      if (f == l->forks.end()) continue;
      l->forks.erase(f);
      Event e;
      e.type = Event::Type::finished;
      e.finish_reason = FinishReason::cancelled;
      e.usage.prompt_tokens = l->seq.n_prompt;
      return emit(id, std::move(e));
    }
  }

  void publish_stats() {
    stat_free = kv->n_free_blocks();
    stat_cached = kv->n_cached_blocks();
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
    } else {
      HERD_REQUIRE(e.tokenizer, "the request has text but the model directory has no tokenizer; send token ids");
      HERD_REQUIRE(!r.text.empty(), "the request has neither token ids nor text");
      const Status s = e.tokenizer->encode(r.text, /*allow_special=*/false, e.tokenizer->adds_bos(), &l->seq.tokens);
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
    const SamplingOptions& so = r.sampling;
    const SamplingParams sp = resolve(so, e.m->files.generation);
    const bool penalised = sp.repetition_penalty != 1.0f || sp.frequency_penalty != 0.0f || sp.presence_penalty != 0.0f;
    const bool plain_greedy = sp.greedy() && !penalised;
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
      l->seq.id = l->seq.arrival = e.next_id;
      *id = l->seq.id;
      // Sample i of the request has id *id + i; each draws with seed + i.
      for (int i = 0; i < r.n_samples; ++i) e.channels[e.next_id++];
      for (int i = 1; i < r.n_samples; ++i) {
        std::optional<SamplingParams> p;
        if (!plain_greedy) p = sp, p->seed = sp.seed + uint64_t(i);
        l->forks.push_back({*id + uint64_t(i), p});
      }
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
    if (e.finish_reason == FinishReason::error) return Status::internal(e.error);
  }
  return Status::ok();
}

}  // namespace herd
