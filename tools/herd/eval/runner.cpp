#include "runner.h"

#include <algorithm>
#include <chrono>
#include <list>
#include <unordered_map>

#include "loglikelihood.h"

namespace herd_cli::eval {
namespace {

// A seed per item that depends only on --seed and the item's identity, so that results do not
// depend on the order or the company items run in.
uint64_t item_seed(uint64_t seed, const TaskItem& item) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a of task \0 id
  for (char c : item.task + '\0' + item.id) h = (h ^ uint8_t(c)) * 1099511628211ull;
  uint64_t z = h ^ (seed + 0x9E3779B97F4A7C15ull);  // splitmix64's finalizer mixes in the seed
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

herd::Status item_error(const TaskItem& item, const herd::Status& s) {
  return s.with_prefix(item.origin + ": item '" + item.id + "': ");
}

// One item's requests, read event by event as the engine makes them.
struct InFlight {
  const TaskItem* item = nullptr;
  std::vector<herd::RequestId> ids;  // multiple choice: one per choice; generation: one per sample
  std::vector<ContinuationTokens> choices;
  std::string prompt_text;  // generation: the prompt as the record shows it
  // Per request in ids: its text, prompt logprobs, and whether its finished event came.
  std::vector<std::string> texts;
  std::vector<std::vector<herd::Logprob>> prompt_lps;
  size_t n_finished = 0;
  bool done() const { return n_finished == ids.size() && ids.size() == expected(); }
  size_t expected() const { return choices.empty() ? ids.size() : choices.size(); }
};

class Runner {
 public:
  Runner(herd::Engine& engine, const herd::Tokenizer& tokenizer, const RunOptions& options,
         const std::function<void(const RunStats&)>& on_progress, RunStats* stats)
      : engine_(engine), tokenizer_(tokenizer), options_(options), on_progress_(on_progress), stats_(stats) {}

  herd::Status submit(const TaskItem& item, InFlight* f) {
    f->item = &item;
    if (const auto* mc = std::get_if<MultipleChoice>(&item.kind)) return submit_choices(*mc, f);
    return submit_generation(std::get<Generation>(item.kind), f);
  }

  // Takes one event of request f.ids[i]. A multiple-choice item submits its other choices once
  // the first one has finished.
  herd::Status take(InFlight& f, size_t i, herd::Event&& ev) {
    f.texts[i] += ev.text;
    if (ev.type == herd::Event::Type::prompt) f.prompt_lps[i] = std::move(ev.prompt_logprobs);
    if (ev.type == herd::Event::Type::token) ++stats_->completion_tokens;
    if (ev.type == herd::Event::Type::finished) {
      if (ev.finish_reason == herd::FinishReason::error) return herd::Status::internal(ev.error);
      if (ev.finish_reason == herd::FinishReason::cancelled) return herd::Status::internal("the request was cancelled");
      ++f.n_finished;
      // Only the first sample of a prompt counts its tokens (the others share its KV blocks).
      if (!f.choices.empty() || i == 0) {
        stats_->prompt_tokens += ev.usage.prompt_tokens;
        stats_->cached_prompt_tokens += ev.usage.cached_prompt_tokens;
      }
      if (!f.choices.empty() && f.ids.size() == 1)
        for (size_t j = 1; j < f.choices.size(); ++j)
          if (herd::Status s = submit_choice(&f, j); !s) return s;
    }
    on_progress_(*stats_);
    return herd::Status::ok();
  }

  ItemResult score(const InFlight& f) {
    const TaskItem& item = *f.item;
    if (const auto* mc = std::get_if<MultipleChoice>(&item.kind)) {
      std::vector<ChoiceScore> scores;
      for (size_t i = 0; i < f.choices.size(); ++i) {
        const size_t n_context = f.choices[i].n_context;
        scores.push_back({continuation_logprob(f.prompt_lps[i]), int(f.choices[i].ids.size() - n_context)});
      }
      return score_multiple_choice(item, *mc, scores);
    }
    const ExecLimits limits = options_.exec;
    return score_generation(item, std::get<Generation>(item.kind), f.prompt_text, f.texts,
                            [&limits](const TestCommand& t, const std::string& answer) {
                              return run_test_command(t, answer, limits);
                            });
  }

 private:
  // One request per choice, context + delimiter + choice, scored by the prompt logprobs of the
  // choice's tokens only, so the context before them may come from the prefix cache. Only the
  // first choice is submitted here; take() submits the others once it has finished, when the
  // context's full blocks are in the cache (requests admitted in the same step would each
  // compute it). Items in flight together still run their first choices side by side.
  herd::Status submit_choices(const MultipleChoice& mc, InFlight* f) {
    for (const std::string& choice : mc.choices) {
      ContinuationTokens tokens;
      if (herd::Status s = tokenize_continuation(tokenizer_, mc.context, mc.delimiter + choice, &tokens); !s) return s;
      f->choices.push_back(std::move(tokens));
    }
    f->texts.resize(f->choices.size());
    f->prompt_lps.resize(f->choices.size());
    return submit_choice(f, 0);
  }

  herd::Status submit_choice(InFlight* f, size_t i) {
    const ContinuationTokens& tokens = f->choices[i];
    herd::GenerateRequest r;
    r.prompt = tokens.ids;
    r.prompt_logprobs = true;
    r.prompt_logprobs_from = int(tokens.n_context);
    r.max_tokens = 1;  // the engine always makes one token; nothing reads it
    r.sampling.temperature = 0.0f;
    herd::RequestId id;
    if (herd::Status s = engine_.submit(r, &id); !s) return s;
    f->ids.push_back(id);
    return herd::Status::ok();
  }

  herd::Status submit_generation(const Generation& gen, InFlight* f) {
    herd::GenerateRequest r;
    if (gen.prompt) {
      if (herd::Status s = encode_text(tokenizer_, *gen.prompt, &r.prompt); !s) return s;
      f->prompt_text = *gen.prompt;
    } else {
      r.conversation.emplace();
      r.conversation->messages = gen.messages;
      if (herd::Status s = herd::render_prompt_ids(*r.conversation, tokenizer_, /*special_in_content=*/false, &r.prompt); !s)
        return s;
      if (herd::Status s = tokenizer_.decode(r.prompt, &f->prompt_text); !s) return s;
    }
    const int64_t room = engine_.info().max_context - int64_t(r.prompt.size());
    r.max_tokens = int(std::max<int64_t>(1, std::min<int64_t>(gen.max_tokens.value_or(options_.max_tokens), room)));
    r.n_samples = gen.n;
    r.sampling = options_.sampling;
    const ItemSampling& own = gen.sampling;
    if (own.temperature) r.sampling.temperature = own.temperature;
    if (own.top_p) r.sampling.top_p = own.top_p;
    if (own.top_k) r.sampling.top_k = own.top_k;
    if (own.min_p) r.sampling.min_p = *own.min_p;
    r.sampling.stop.insert(r.sampling.stop.end(), own.stop.begin(), own.stop.end());
    r.sampling.seed = item_seed(options_.seed, *f->item);
    herd::RequestId id;
    if (herd::Status s = engine_.submit(r, &id); !s) return s;
    for (int i = 0; i < gen.n; ++i) f->ids.push_back(id + uint64_t(i));
    f->texts.resize(size_t(gen.n));
    f->prompt_lps.resize(size_t(gen.n));
    return herd::Status::ok();
  }

  herd::Engine& engine_;
  const herd::Tokenizer& tokenizer_;
  const RunOptions& options_;
  const std::function<void(const RunStats&)>& on_progress_;
  RunStats* stats_;
};

}  // namespace

herd::Status run_items(herd::Engine& engine, const herd::Tokenizer& tokenizer, const std::vector<const TaskItem*>& items,
                       const RunOptions& options, const std::function<herd::Status(ItemResult&&)>& on_item,
                       const std::function<void(const RunStats&)>& on_progress, RunStats* stats) {
  Runner runner(engine, tokenizer, options, on_progress, stats);
  const size_t window = options.concurrency == 0 ? items.size() : options.concurrency;
  // Items in flight, by the ids of their requests; an item is scored as soon as its last
  // request finishes, whatever the order they were submitted in.
  std::list<InFlight> in_flight;
  std::unordered_map<herd::RequestId, std::pair<std::list<InFlight>::iterator, size_t>> owner;
  std::vector<herd::RequestId> waiting;  // the ids in owner, oldest item first
  size_t next = 0;
  // Requests still in flight when this returns early are cancelled by the engine's destructor.
  while (next < items.size() || !in_flight.empty()) {
    const size_t n_requests = owner.size();
    while (next < items.size() && in_flight.size() < window) {
      auto f = in_flight.emplace(in_flight.end());
      if (herd::Status s = runner.submit(*items[next], &*f); !s) return item_error(*items[next], s);
      ++next;
    }
    // Requests submitted since the last event (new items, the later choices of an item) join.
    for (auto it = in_flight.begin(); it != in_flight.end(); ++it)
      for (size_t i = 0; i < it->ids.size(); ++i) owner.try_emplace(it->ids[i], it, i);
    if (owner.size() != n_requests) {
      waiting.clear();
      for (const InFlight& f : in_flight) waiting.insert(waiting.end(), f.ids.begin(), f.ids.end());
    }
    herd::Event ev;
    const std::optional<herd::RequestId> id = engine.wait_any(waiting, std::chrono::hours(24), &ev);
    if (!id) return herd::Status::internal("the engine has no events for the requests in flight");
    auto [f, i] = owner.at(*id);
    if (herd::Status s = runner.take(*f, i, std::move(ev)); !s) return item_error(*f->item, s);
    if (!f->done()) continue;
    ItemResult result = runner.score(*f);
    for (herd::RequestId r : f->ids) owner.erase(r);
    in_flight.erase(f);
    ++stats->items_done;
    if (herd::Status s = on_item(std::move(result)); !s) return s;
    on_progress(*stats);
  }
  return herd::Status::ok();
}

}  // namespace herd_cli::eval
