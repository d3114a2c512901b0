// herd bench: prefill and decode throughput through the engine, on a model directory or a
// random-weight model made in memory from a preset (docs/cli.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "commands.h"

namespace herd_cli {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int32_t kMaxBatch = 1024;  // concurrent sequences of one -b entry
// Threads that read the engine's events: few, whatever the batch (each serves its share).
constexpr size_t kReaders = 8;

struct BenchFlags {
  herd::EngineOptions engine;
  std::string model, synthetic, batches = "1";
  herd::SyntheticModelSpec spec;
  herd::SamplingOptions sampling;  // of every request; unset: the model's defaults, else greedy
  int prompt = 512, n_gen = 128, depth = 0, reps = 3;
  double bandwidth_gbps = 0;
  bool json = false;
};

// A preset name (models/NAME.json, looked up beside the binary and in $HERD_MODELS_DIR) or a path.
std::string find_preset(const std::string& name) {
  namespace fs = std::filesystem;
  if (fs::exists(name)) return name;
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("HERD_MODELS_DIR")) dirs.emplace_back(env);
  const fs::path exe = fs::read_symlink("/proc/self/exe").parent_path();
  dirs.push_back(exe / "../share/herd/models");  // installed
  dirs.push_back(exe / "../../../models");       // build tree: build/tools/herd/herd
  for (const auto& d : dirs)
    if (fs::exists(d / (name + ".json"))) return (d / (name + ".json")).string();
  throw CLI::ValidationError("--synthetic", "no preset '" + name + "' (models/NAME.json) and no such file; "
                                            "set HERD_MODELS_DIR or pass a config.json path");
}

std::vector<int32_t> random_ids(int n, int64_t n_vocab, std::mt19937& rng) {
  std::vector<int32_t> ids(static_cast<size_t>(std::max(n, 1)));
  for (auto& id : ids) id = int32_t(rng() % uint64_t(n_vocab));
  return ids;
}

// Runs the requests at once; returns each token event's time, per request. A few reader threads
// share the requests, each going round its own one event at a time: in a decode step every
// running request gets one token, so a reader waits only for tokens not made yet, and an event
// is timed within about one step of when it was made. A request the engine refuses (bad sampling
// flags, a prompt longer than the context) keeps its status, a caller's error; one that fails
// while running is an internal error.
std::vector<std::vector<Clock::time_point>> run_batch(herd::Engine& e, const std::vector<herd::GenerateRequest>& rs,
                                                      Clock::time_point* start, herd::Status* error) {
  std::vector<herd::RequestId> ids(rs.size());
  *start = Clock::now();
  for (size_t i = 0; i < rs.size(); ++i)
    if (herd::Status s = e.submit(rs[i], &ids[i]); !s) {
      *error = s;
      return {};
    }
  std::vector<std::vector<Clock::time_point>> times(rs.size());
  std::mutex mu;
  std::vector<std::thread> readers;
  const size_t n_readers = std::min(kReaders, rs.size());
  for (size_t r = 0; r < n_readers; ++r)
    readers.emplace_back([&, r] {
      std::vector<size_t> mine;  // requests r, r + n_readers, ... that have not finished
      for (size_t i = r; i < rs.size(); i += n_readers) mine.push_back(i);
      while (!mine.empty()) {
        for (size_t k = 0; k < mine.size();) {
          const size_t i = mine[k];
          herd::Event ev;
          if (!e.next_event(ids[i], &ev) || ev.type == herd::Event::Type::finished) {
            if (ev.type == herd::Event::Type::finished && ev.finish_reason == herd::FinishReason::error) {
              std::lock_guard lock(mu);
              *error = herd::Status::internal(ev.error);
            }
            mine.erase(mine.begin() + long(k));
            continue;
          }
          if (ev.type == herd::Event::Type::token) times[i].push_back(Clock::now());
          ++k;
        }
      }
    });
  for (auto& t : readers) t.join();
  return times;
}

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

struct Stat {
  double median, min, max;
};
Stat summarise(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

int run_bench(BenchFlags& f) {
  if (f.model.empty() == f.synthetic.empty()) {
    std::cerr << "herd: error: give exactly one of -m MODEL and --synthetic PRESET\n";
    return 2;
  }
  const std::vector<int32_t> batches = parse_ids(f.batches, "-b");
  for (int32_t b : batches)
    if (b < 1 || b > kMaxBatch)
      throw CLI::ValidationError("-b", "batch size " + std::to_string(b) + " is not from 1 to " + std::to_string(kMaxBatch));
  f.engine.max_seqs = std::max(f.engine.max_seqs, *std::max_element(batches.begin(), batches.end()));

  std::unique_ptr<herd::Engine> engine;
  std::cerr << "herd bench: loading " << (f.model.empty() ? "synthetic " + f.synthetic : f.model) << "...\n";
  herd::Status s;
  if (!f.synthetic.empty()) {
    f.spec.config_path = find_preset(f.synthetic);
    s = herd::Engine::load_synthetic(f.spec, f.engine, &engine);
  } else {
    s = herd::Engine::load(f.model, f.engine, &engine);
  }
  if (int rc = report(s)) return rc;
  const herd::ModelInfo& info = engine->info();
  const herd::EngineStats st = engine->stats();
  std::cerr << "herd bench: " << info.device << ", " << info.dtype << ", KV cache of " << st.kv_capacity_tokens
            << " tokens (" << info.kv_dtype << ")\n";
  // Bytes a decode step must read at least: every linear weight and the LM head once.
  const double weight_bytes = double(info.decode_weight_bytes);

  std::mt19937 rng(1234);
  nlohmann::json rows = nlohmann::json::array();
  for (int32_t b : batches) {
    // Prefill: b prompts of p tokens, one output token each.
    std::vector<double> pp, tg;
    for (int rep = 0; rep < f.reps; ++rep) {
      std::vector<herd::GenerateRequest> rs(static_cast<size_t>(b));
      for (auto& r : rs) r.prompt = random_ids(f.prompt, info.n_vocab, rng), r.max_tokens = 1, r.sampling = f.sampling;
      Clock::time_point t0;
      herd::Status error;
      auto times = run_batch(*engine, rs, &t0, &error);
      if (!error) return report(error);
      Clock::time_point end = t0;
      for (const auto& t : times) end = std::max(end, t.back());
      pp.push_back(double(b) * f.prompt / seconds(t0, end));

      // Decode: b sequences after depth tokens; only tokens made once every sequence is decoding count.
      for (auto& r : rs) r.prompt = random_ids(f.depth, info.n_vocab, rng), r.max_tokens = f.n_gen + 1, r.ignore_eos = true;
      times = run_batch(*engine, rs, &t0, &error);
      if (!error) return report(error);
      Clock::time_point all_decoding = t0, last = t0;
      for (const auto& t : times) all_decoding = std::max(all_decoding, t.front()), last = std::max(last, t.back());
      int64_t n_after = 0;
      for (const auto& t : times) n_after += std::count_if(t.begin(), t.end(), [&](auto x) { return x > all_decoding; });
      tg.push_back(double(n_after) / seconds(all_decoding, last));
    }
    const Stat p = summarise(pp), g = summarise(tg);
    const nlohmann::json bound = f.bandwidth_gbps > 0 ? nlohmann::json(f.bandwidth_gbps * 1e9 / weight_bytes * b) : nlohmann::json();
    const nlohmann::json base = {{"batch", b}, {"device", info.device}, {"dtype", info.dtype},
                                 {"prefill_tok_s", p.median}, {"decode_tok_s", g.median}};
    nlohmann::json pr = base, gr = base;
    pr.update({{"test", "pp" + std::to_string(f.prompt)}, {"ctx", 0}, {"tok_s", p.median}, {"tok_s_min", p.min},
               {"tok_s_max", p.max}, {"bound_tok_s", nullptr}});
    gr.update({{"test", "tg" + std::to_string(f.n_gen)}, {"ctx", f.depth}, {"tok_s", g.median}, {"tok_s_min", g.min},
               {"tok_s_max", g.max}, {"bound_tok_s", bound}});
    rows.push_back(pr);
    rows.push_back(gr);
  }
  if (f.json) {
    std::cout << rows.dump() << "\n";
    return 0;
  }
  std::printf("%-8s %6s %7s %12s %12s %12s %12s\n", "test", "batch", "ctx", "tok/s", "min", "max", "bound");
  for (const auto& r : rows) {
    const std::string bound = r["bound_tok_s"].is_null() ? "-" : std::to_string(int64_t(r["bound_tok_s"].get<double>()));
    std::printf("%-8s %6d %7d %12.1f %12.1f %12.1f %12s\n", r["test"].get<std::string>().c_str(), r["batch"].get<int>(),
                r["ctx"].get<int>(), r["tok_s"].get<double>(), r["tok_s_min"].get<double>(), r["tok_s_max"].get<double>(),
                bound.c_str());
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, int& rc) {
  auto f = std::make_shared<BenchFlags>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Prefill (pp) and decode (tg) throughput through the batching engine; medians over --reps runs");
  cmd->add_option("-m,--model", f->model, "Model directory or GGUF file");
  cmd->add_option("--synthetic", f->synthetic,
                  "A preset from models/ (llama-3.1-8b, llama-3.2-1b, ...) or a config.json: random weights in memory");
  cmd->add_option("--layers", f->spec.n_layer, "Synthetic: override the number of layers (1 to 1024)")
      ->check(int_range(1, 1024));
  cmd->add_option("--dtype", f->spec.dtype,
                  "Synthetic: bf16, f16 or f32; or the layers' matrices quantized: fp8, int4 (as herd quantize writes them), "
                  "q8_0, q4_0, q4_1, q6_k")
      ->capture_default_str()
      ->check(CLI::IsMember({"bf16", "f16", "f32", "fp8", "int4", "q8_0", "q4_0", "q4_1", "q6_k"}));
  const int most = std::numeric_limits<int32_t>::max();
  cmd->add_option("-p", f->prompt, "Prompt tokens of the prefill test")->capture_default_str()->check(int_range(1, most));
  cmd->add_option("-n", f->n_gen, "Tokens of the decode test")->capture_default_str()->check(int_range(1, most));
  cmd->add_option("-b", f->batches,
                  "Concurrent sequences, 1 to " + std::to_string(kMaxBatch) + "; a comma list runs each (e.g. 1,8,32)")
      ->capture_default_str();
  cmd->add_option("-d,--depth,--ctx", f->depth, "Context tokens before the decode test (the rows' ctx)")
      ->capture_default_str()
      ->check(int_range(0, most));
  cmd->add_option("--reps", f->reps, "Repetitions; rows report median, min and max")->capture_default_str()->check(int_range(1, most));
  cmd->add_option("--bandwidth", f->bandwidth_gbps,
                  "Measured memory bandwidth in GB/s: adds the decode bound (weights read once per step)")
      ->check(positive_real(1e6));
  cmd->add_flag("--json", f->json, "Print a JSON list of rows instead of a table");
  add_sampling_flags(cmd, f->sampling);
  add_engine_flags(cmd, f->engine);
  cmd->callback([f, &rc] { rc = run_bench(*f); });
}

}  // namespace herd_cli
