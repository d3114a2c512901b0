#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <thread>

#include "commands.h"

namespace herd_cli {

namespace {

// More CPU threads than this only oversubscribe the cores (and tens of thousands would take
// minutes to start): four per hardware thread, at most 1024.
int max_threads() {
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1024 : int(std::min(1024u, 4 * hw));
}

// --device, -t/--threads, --tp and --rope-factor: where and how any model is loaded.
void add_device_flags(CLI::App* cmd, std::string& device, int& n_threads, int& tensor_parallel, float& rope_factor) {
  cmd->add_option("--device", device, "cpu, cuda, or auto (cuda when a GPU is present)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  const int most = max_threads();
  cmd->add_option("-t,--threads", n_threads, "CPU threads (0 = one per core; at most " + std::to_string(most) + ")")
      ->capture_default_str()
      ->check(CLI::Validator(
          [most](const std::string& text) -> std::string {
            int n = -1;
            auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
            if (ec == std::errc() && p == text.data() + text.size() && n >= 0 && n <= most) return "";
            return "'" + text + "' is not 0 (one per core) or a thread count between 1 and " + std::to_string(most);
          },
          "INT", ""));
  cmd->add_option("--tp,--tensor-parallel-size", tensor_parallel,
                  "Split the model over this many ranks (tensor parallelism: 1/N of the heads, FFN and vocabulary "
                  "each; it must divide the attention heads, FFN width and vocabulary, and divide or be a multiple "
                  "of the KV heads). Ranks are threads sharing -t's CPU threads; under a launcher (torchrun, mpirun: "
                  "WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT) each process is one rank, on its own GPU with --device "
                  "cuda (docs/distributed.md)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--rope-factor", rope_factor,
                  "RoPE scaling factor for Meta params.json checkpoints, which do not record it (Llama 3.1: 8, 3.2: 32)")
      ->capture_default_str();
}

// Once a command's flags are parsed: when the launcher started this process as one rank of a group
// (herd/distributed.h), rank 0 goes on with the command on the whole group, and every other rank
// loads its shard of the same model and follows rank 0 instead of running the command.
void join_process_group(const CLI::App* cmd, const herd::ModelOptions& asked, int& tensor_parallel,
                        std::optional<herd::ProcessGroup>& group) {
  std::optional<herd::ProcessGroup> g;
  if (const int rc = report(herd::process_group_from_env(&g))) throw RankExit{rc};
  if (!g || g->world_size == 1) return;
  if (tensor_parallel != 1 && tensor_parallel != g->world_size)
    throw RankExit{report(herd::Status::invalid_input(
        "--tp " + std::to_string(tensor_parallel) + ", but the launcher started " + std::to_string(g->world_size) +
        " ranks (WORLD_SIZE): under a launcher each process is one rank, so leave --tp out or make them agree"))};
  tensor_parallel = g->world_size;
  group = g;
  if (g->rank == 0) return;
  const std::string path = cmd->get_option("--model")->as<std::string>();
  if (path.empty())
    throw RankExit{report(herd::Status::invalid_input("rank " + std::to_string(g->rank) +
                                                      ": a process group splits a model given with -m"))};
  herd::ModelOptions o = asked;
  o.tensor_parallel = tensor_parallel;
  throw RankExit{report(herd::run_follower_rank(path, o, *g))};
}

void add_exact_flag(CLI::App* cmd, bool& exact) {
  cmd->add_flag("--exact", exact,
                "CPU: the reference path (weights dequantized to f32, f32 products) instead of the fast kernels, "
                "which round activations to 8 bits against quantized weights (docs/cpu.md)");
}

void add_kv_dtype_flag(CLI::App* cmd, std::string& kv_dtype) {
  cmd->add_option("--kv-dtype", kv_dtype,
                  "KV cache type: auto (f16 on the CPU, f32 with --exact, bf16 on CUDA) or fp8 (E4M3: half the "
                  "memory of f16/bf16; docs/quantized.md)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "fp8"}));
}

}  // namespace

void add_model_flags(CLI::App* cmd, ModelFlags& f) {
  cmd->add_option("-m,--model", f.path, "Model: a directory (Hugging Face config.json or Meta params.json, with *.safetensors or consolidated.NN.pth) or a GGUF file")
      ->required();
  add_device_flags(cmd, f.options.device, f.options.n_threads, f.options.tensor_parallel, f.options.meta_rope_factor);
  add_exact_flag(cmd, f.options.exact);
  add_kv_dtype_flag(cmd, f.options.kv_dtype);
  cmd->add_option("-c,--ctx-size,--ctx", f.options.max_context,
                  "Context length: KV cache capacity in tokens (clamped to the model's context)")
      ->capture_default_str()
      ->check(int_range(1, std::numeric_limits<int64_t>::max()));
  cmd->parse_complete_callback(
      [cmd, &f] { join_process_group(cmd, f.options, f.options.tensor_parallel, f.options.process_group); });
}

void add_engine_flags(CLI::App* cmd, herd::EngineOptions& o) {
  add_device_flags(cmd, o.device, o.n_threads, o.tensor_parallel, o.meta_rope_factor);
  add_exact_flag(cmd, o.exact);
  add_kv_dtype_flag(cmd, o.kv_dtype);
  cmd->add_option_function<std::string>(
      "--kv-memory", [&o](const std::string& text) { o.kv_memory = parse_size(text, "--kv-memory"); },
      "KV cache budget, e.g. 512MiB or 8GiB (default: half of the memory free after the weights)");
  cmd->add_option("--block-size", o.block_size, "Tokens per KV block (a power of two)")->capture_default_str();
  cmd->add_option("--batch-tokens", o.max_batch_tokens, "Token budget of one engine step")->capture_default_str();
  cmd->parse_complete_callback([cmd, &o] {
    herd::ModelOptions asked;
    asked.device = o.device;
    asked.n_threads = o.n_threads;
    asked.exact = o.exact;
    asked.kv_dtype = o.kv_dtype;
    asked.meta_rope_factor = o.meta_rope_factor;
    join_process_group(cmd, asked, o.tensor_parallel, o.process_group);
  });
}

void add_sampling_flags(CLI::App* cmd, herd::SamplingOptions& s) {
  cmd->add_option("--temp", s.temperature, "Temperature; 0 is greedy");
  cmd->add_option("--top-k", s.top_k, "Keep the k most likely tokens (0: off)");
  cmd->add_option("--top-p", s.top_p, "Nucleus: the smallest set with this much probability (1: off)");
  cmd->add_option("--min-p", s.min_p, "Drop tokens below min-p x the top probability (0: off)")->capture_default_str();
  cmd->add_option("--repeat-penalty", s.repetition_penalty, "CTRL/HF repetition penalty over prompt and output (1: off)")
      ->capture_default_str();
  cmd->add_option("--frequency-penalty", s.frequency_penalty, "OpenAI frequency penalty")->capture_default_str();
  cmd->add_option("--presence-penalty", s.presence_penalty, "OpenAI presence penalty")->capture_default_str();
  cmd->add_option_function<std::string>(
      "--seed", [&s](const std::string& text) { s.seed = parse_seed(text, "--seed"); },
      "Random seed, 0 to 2^64-1 (default: a fresh one per request)");
  cmd->add_option("--stop", s.stop, "A stop string (repeatable); matched across tokens and not printed");
}

int report(const herd::Status& s) {
  if (s.is_ok()) return 0;
  std::cerr << "herd: error: " << s.message() << "\n";
  return s.is_caller_error() ? 2 : 1;
}

int64_t parse_size(const std::string& text, const std::string& flag) {
  double value = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, value);
  const std::string unit(p, end);
  // KB, MB, GB, TB are powers of 1000 (as cards and disks are sold); KiB.. and K, M, G, T powers of 1024.
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  const char* prefixes = "KMGT";
  for (int i = 0; i < 4; ++i) {
    const std::string p(1, prefixes[i]);
    if (unit == p + "B") scale = std::pow(1000.0, i + 1);
    else if (unit == p + "iB" || unit == p) scale = std::pow(1024.0, i + 1);
  }
  if (ec != std::errc() || scale == 0 || !(value > 0))
    throw CLI::ValidationError(flag, "'" + text + "' is not a size (examples: 512MiB, 8GiB, 80GB, 1048576)");
  // 2^62 bytes (4 EiB) is beyond any memory, and the product stays far from int64's overflow.
  if (!(value * scale <= double(int64_t(1) << 62)))
    throw CLI::ValidationError(flag, "'" + text + "' is too large (at most 4194304TiB; examples: 512MiB, 8GiB)");
  return int64_t(value * scale);
}

uint64_t parse_seed(const std::string& text, const std::string& flag) {
  uint64_t seed = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), seed);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size())
    throw CLI::ValidationError(flag, "'" + text + "' is not a seed (an integer from 0 to 18446744073709551615)");
  return seed;
}

CLI::Validator positive_real(double most) {
  char bound[32];
  std::snprintf(bound, sizeof bound, "%g", most);
  return CLI::Validator(
      [most, range = std::string(bound)](const std::string& text) -> std::string {
        double v = 0;
        auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec == std::errc() && p == text.data() + text.size() && v > 0 && v <= most) return "";
        return "'" + text + "' is not a number above 0 and at most " + range;
      },
      "NUMBER", "");
}

CLI::Validator int_range(int64_t lo, int64_t hi) {
  const std::string range = hi == std::numeric_limits<int32_t>::max() || hi == std::numeric_limits<int64_t>::max()
                                ? "an integer of at least " + std::to_string(lo)
                                : "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
  return CLI::Validator(
      [lo, hi, range](const std::string& text) -> std::string {
        int64_t v = 0;
        auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec == std::errc() && p == text.data() + text.size() && v >= lo && v <= hi) return "";
        return "'" + text + "' is not " + range;
      },
      "INT", "");
}

std::vector<int32_t> parse_ids(const std::string& text, const std::string& flag) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    int32_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size())
      throw CLI::ValidationError(flag, "'" + item + "' is not a token id (expected comma-separated integers)");
    ids.push_back(v);
    start = end + 1;
  }
  return ids;
}

double json_float(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", double(v));
  return std::strtod(buf, nullptr);
}

void print_float(std::string& out, float v) {
  if (!std::isfinite(v)) {  // JSON has no inf/nan
    out += "null";
    return;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", double(v));
  out += buf;
}

}  // namespace herd_cli
