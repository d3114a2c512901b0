#include "runner.h"

#include <algorithm>
#include <deque>

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
  const std::string msg = item.origin + ": item '" + item.id + "': " + s.message();
  return s.code() == herd::Status::Code::invalid_input ? herd::Status::invalid_input(msg) : herd::Status::internal(msg);
}

struct InFlight {
  const TaskItem* item = nullptr;
  std::vector<herd::RequestId> ids;  // multiple choice: one per choice; generation: the first sample's
  std::vector<ContinuationTokens> choices;
  std::string prompt_text;  // generation: the prompt as the record shows it
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

  herd::Status collect(InFlight& f, ItemResult* out) {
    const TaskItem& item = *f.item;
    if (const auto* mc = std::get_if<MultipleChoice>(&item.kind)) {
      std::vector<ChoiceScore> scores;
      for (size_t i = 0; i < f.choices.size(); ++i) {
        if (i == 1)
          for (size_t j = 1; j < f.choices.size(); ++j)
            if (herd::Status s = submit_choice(&f, j); !s) return s;
        std::string text;
        std::vector<herd::Logprob> prompt_lp;
        if (herd::Status s = drain(f.ids[i], true, &text, &prompt_lp); !s) return s;
        const size_t n_context = f.choices[i].n_context;
        scores.push_back({continuation_logprob(prompt_lp), int(f.choices[i].ids.size() - n_context)});
      }
      *out = score_multiple_choice(item, *mc, scores);
      return herd::Status::ok();
    }
    const Generation& gen = std::get<Generation>(item.kind);
    std::vector<std::string> outputs(size_t(gen.n));
    for (int i = 0; i < gen.n; ++i) {
      std::vector<herd::Logprob> unused;
      if (herd::Status s = drain(f.ids[0] + uint64_t(i), i == 0, &outputs[size_t(i)], &unused); !s) return s;
    }
    const ExecLimits limits = options_.exec;
    *out = score_generation(item, gen, f.prompt_text, outputs, [&limits](const TestCommand& t, const std::string& answer) {
      return run_test_command(t, answer, limits);
    });
    return herd::Status::ok();
  }

 private:
  // One request per choice, context + delimiter + choice, scored by the prompt logprobs of the
  // choice's tokens only, so the context before them may come from the prefix cache. Only the
  // first choice is submitted here; collect() submits the others once it has finished, when the
  // context's full blocks are in the cache (requests admitted in the same step would each
  // compute it). Items in flight together still run their first choices side by side.
  herd::Status submit_choices(const MultipleChoice& mc, InFlight* f) {
    for (const std::string& choice : mc.choices) {
      ContinuationTokens tokens;
      if (herd::Status s = tokenize_continuation(tokenizer_, mc.context, mc.delimiter + choice, &tokens); !s) return s;
      f->choices.push_back(std::move(tokens));
    }
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
      herd::Conversation conv;
      conv.messages = gen.messages;
      if (herd::Status s = herd::render_prompt_ids(conv, tokenizer_, /*special_in_content=*/false, &r.prompt); !s) return s;
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
    f->ids.push_back(id);
    return herd::Status::ok();
  }

  // Reads one request's events to its end. Only the first sample of a prompt counts its tokens.
  herd::Status drain(herd::RequestId id, bool count_prompt, std::string* text, std::vector<herd::Logprob>* prompt_lp) {
    herd::Event ev;
    while (engine_.next_event(id, &ev)) {
      *text += ev.text;
      if (ev.type == herd::Event::Type::prompt) *prompt_lp = std::move(ev.prompt_logprobs);
      if (ev.type == herd::Event::Type::token) ++stats_->completion_tokens;
      if (ev.type == herd::Event::Type::finished) {
        if (ev.finish_reason == herd::FinishReason::error) return herd::Status::internal(ev.error);
        if (ev.finish_reason == herd::FinishReason::cancelled) return herd::Status::internal("the request was cancelled");
        if (count_prompt) {
          stats_->prompt_tokens += ev.usage.prompt_tokens;
          stats_->cached_prompt_tokens += ev.usage.cached_prompt_tokens;
        }
      }
      on_progress_(*stats_);
    }
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
  std::deque<InFlight> in_flight;
  size_t next = 0;
  // Requests still in flight when this returns early are cancelled by the engine's destructor.
  while (next < items.size() || !in_flight.empty()) {
    while (next < items.size() && in_flight.size() < window) {
      InFlight f;
      if (herd::Status s = runner.submit(*items[next], &f); !s) return item_error(*items[next], s);
      in_flight.push_back(std::move(f));
      ++next;
    }
    ItemResult result;
    if (herd::Status s = runner.collect(in_flight.front(), &result); !s) return item_error(*in_flight.front().item, s);
    in_flight.pop_front();
    ++stats->items_done;
    if (herd::Status s = on_item(std::move(result)); !s) return s;
    on_progress(*stats);
  }
  return herd::Status::ok();
}

}  // namespace herd_cli::eval
