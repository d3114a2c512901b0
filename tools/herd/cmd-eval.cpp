// herd eval: benchmark-style task files through the batching engine, scored the way published
// results are (docs/eval.md). The work is in eval/: task-file (parsing), runner (the engine),
// score, extract and metrics (scoring), exec (test commands), results (--out), report (tables).
#include <chrono>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "eval/report.h"
#include "eval/results.h"
#include "eval/runner.h"
#include "progress.h"

namespace herd_cli {

namespace {

struct EvalFlags {
  herd::EngineOptions engine;
  herd::SamplingOptions sampling;
  std::string model, tasks, out, summary, exec_memory = "2GiB";
  size_t limit = 0;
  eval::RunOptions run;
  bool allow_exec = false;
};

int run_eval(EvalFlags& f) {
  std::vector<eval::TaskItem> items;
  if (int rc = report(eval::parse_task_file(f.tasks, &items))) return rc;
  if (f.limit > 0 && items.size() > f.limit) items.resize(f.limit);
  for (const eval::TaskItem& item : items) {
    const auto* gen = std::get_if<eval::Generation>(&item.kind);
    if (gen && gen->test && !f.allow_exec)
      return report(herd::Status::invalid_input(item.origin + ": item '" + item.id +
                                                "' has a test command, which runs the model's output as code: "
                                                "pass --allow-exec to run it"));
  }
  eval::ResultsFile results;
  if (!f.out.empty())
    if (int rc = report(eval::ResultsFile::open(f.out, &results))) return rc;

  // Items already in --out count in the summary as they were; the rest run now.
  std::vector<eval::ItemMetrics> scored;
  std::vector<const eval::TaskItem*> todo;
  for (const eval::TaskItem& item : items) {
    const auto done = results.done().find({item.task, item.id});
    if (done != results.done().end()) scored.push_back(done->second);
    else todo.push_back(&item);
  }
  if (!scored.empty())
    std::cerr << "herd: " << scored.size() << " of " << items.size() << " items are already in " << f.out << "\n";

  eval::RunStats stats;
  double elapsed_s = 0;
  if (!todo.empty()) {
    std::unique_ptr<herd::Engine> engine;
    if (int rc = report(herd::Engine::load(f.model, f.engine, &engine))) return rc;
    if (!engine->tokenizer()) return report(herd::Status::invalid_input(f.model + ": eval needs the model's tokenizer"));
    const herd::Tokenizer& tokenizer = *engine->tokenizer();
    const herd::EngineStats st = engine->stats();
    std::cerr << "herd: " << engine->info().device << ", KV cache of " << st.kv_capacity_tokens << " tokens; "
              << todo.size() << " items to run, " << (f.run.concurrency ? std::to_string(f.run.concurrency) : "all")
              << " at a time\n";
    f.run.sampling = f.sampling;
    Progress progress("eval", int64_t(todo.size()), "items");
    const auto start = std::chrono::steady_clock::now();
    const herd::Status s = eval::run_items(
        *engine, tokenizer, todo, f.run,
        [&](eval::ItemResult&& r) {
          scored.push_back(r.metrics);
          return f.out.empty() ? herd::Status::ok() : results.append(r.record);
        },
        [&](const eval::RunStats& now) { progress.update(now.items_done, now.tokens()); }, &stats);
    progress.finish();
    if (int rc = report(s)) return rc;
    elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "herd: %lld items in %.2f s: %.2f items/s, %.0f tok/s (%lld prompt tokens, %lld of them from the prefix cache, %lld generated)\n",
                 (long long)stats.items_done, elapsed_s, double(stats.items_done) / elapsed_s,
                 double(stats.tokens()) / elapsed_s, (long long)stats.prompt_tokens, (long long)stats.cached_prompt_tokens,
                 (long long)stats.completion_tokens);
  }

  const std::vector<eval::TaskScores> tasks = eval::summarize(scored);
  std::cout << eval::format_tables(tasks) << std::flush;
  if (f.summary.empty()) return 0;
  const nlohmann::ordered_json summary = {
      {"model", f.model},
      {"tasks_file", f.tasks},
      {"seed", f.run.seed},
      {"n_items", items.size()},
      {"n_run", stats.items_done},
      {"elapsed_s", elapsed_s},
      {"items_per_s", elapsed_s > 0 ? double(stats.items_done) / elapsed_s : 0.0},
      {"tokens_per_s", elapsed_s > 0 ? double(stats.tokens()) / elapsed_s : 0.0},
      {"prompt_tokens", stats.prompt_tokens},
      {"cached_prompt_tokens", stats.cached_prompt_tokens},
      {"completion_tokens", stats.completion_tokens},
      {"tasks", eval::tasks_json(tasks)}};
  std::ofstream out(f.summary);
  out << summary.dump(2) << "\n";
  if (!out) return report(herd::Status::invalid_input(f.summary + ": cannot write the summary"));
  return 0;
}

}  // namespace

void add_eval_command(CLI::App& app, int& rc) {
  auto f = std::make_shared<EvalFlags>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Score a model on a JSONL task file (docs/eval.md): multiple-choice items by loglikelihood (acc, acc_norm), "
      "generation items by answer extraction (em, maj@n) or test commands (pass@k). Prints a table per task on "
      "stdout; progress goes to stderr.");
  cmd->add_option("-m,--model", f->model, "Model directory or file, with its tokenizer")->required();
  cmd->add_option("--tasks", f->tasks, "Task file, one JSON item per line (docs/eval.md)")->required();
  cmd->add_option("--out", f->out,
                  "Per-item results, one JSON line each, appended as items finish; items already in it are skipped");
  cmd->add_option("--summary", f->summary, "Write the metrics and run statistics as JSON");
  const int64_t most = std::numeric_limits<int32_t>::max();
  cmd->add_option("--limit", f->limit, "Only the first N items of the task file")->check(int_range(1, most));
  cmd->add_option("--concurrency", f->run.concurrency, "Items in flight at once (0: all)")->capture_default_str();
  cmd->add_option("-n,--max-tokens", f->run.max_tokens, "Most tokens per sample of generation items that set none")
      ->capture_default_str()
      ->check(int_range(1, most));
  add_sampling_flags(cmd, f->sampling);
  // Evaluation is greedy unless asked otherwise (published results are), whatever
  // generation_config.json says; and reproducible by default.
  f->sampling.temperature = 0.0f;
  cmd->get_option("--temp")->description("Temperature for generation items that set none (default 0: greedy)");
  cmd->get_option("--seed")->description("Seed of the whole run (default 0); each item's derives from it and its task and id");
  cmd->add_flag("--allow-exec", f->allow_exec,
                "Run items' test commands (they run the model's output as code) in a subprocess under limits");
  cmd->add_option("--exec-timeout", f->run.exec.timeout_s, "Seconds a test command may run, unless the item says (at most a day)")
      ->capture_default_str()
      ->check(positive_real(86400));
  cmd->add_option("--exec-memory", f->exec_memory, "Address-space limit of a test command")->capture_default_str();
  add_engine_flags(cmd, f->engine);
  cmd->callback([f, &rc] {
    f->run.exec.memory_bytes = parse_size(f->exec_memory, "--exec-memory");
    f->run.seed = f->sampling.seed.value_or(0);
    rc = run_eval(*f);
  });
}

}  // namespace herd_cli
