// Subcommands of `herd` and the helpers they share. Each add_* registers one subcommand whose
// callback stores its exit code in `rc` (docs/cli.md: 0 ok, 1 internal, 2 bad input, 130 interrupted).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "herd/herd.h"

namespace herd_cli {

// Thrown by a command's flag parsing when this process was a follower rank of a process group
// (docs/distributed.md) and its work is done: main exits with rc instead of running the command.
struct RankExit {
  int rc;
};

// -m/--device/--threads/--ctx, shared by every command that loads a model.
struct ModelFlags {
  std::string path;
  herd::ModelOptions options;
};
void add_model_flags(CLI::App* cmd, ModelFlags& flags);
// The engine's flags: --device, --threads, --tp, --rope-factor, --kv-memory, --block-size, --batch-tokens.
// Both sets also make the command one rank of a process group when the launcher's environment says so.
void add_engine_flags(CLI::App* cmd, herd::EngineOptions& options);
// The sampler chain's flags (docs/sampling.md); unset ones take generation_config.json's defaults.
void add_sampling_flags(CLI::App* cmd, herd::SamplingOptions& sampling);

// Prints "herd: error: MESSAGE" to stderr and returns the exit code for the status.
int report(const herd::Status& s);
// "512MiB", "8GiB", "80G" (GiB), "141GB" (10^9), "1000" (bytes) -> bytes; throws CLI::ValidationError
// naming the flag.
int64_t parse_size(const std::string& text, const std::string& flag);
// A decimal integer in [0, 2^64); throws CLI::ValidationError naming the flag (nothing wraps).
uint64_t parse_seed(const std::string& text, const std::string& flag);
// Checks an integer option against [lo, hi], saying the range readably (no 300-digit bounds).
CLI::Validator int_range(int64_t lo, int64_t hi);
// Checks a real option lies in (0, most].
CLI::Validator positive_real(double most);
// "1,2,3" -> ids; throws CLI::ValidationError naming the flag on anything else.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& flag);
// A float with enough digits to round-trip a float32 (docs/cli.md: 9 significant digits).
void print_float(std::string& out, float v);
// The same rounding for values that go through nlohmann::json, which prints the shortest text
// that round-trips the double it holds.
double json_float(float v);

void add_logits_command(CLI::App& app, int& rc);
void add_generate_command(CLI::App& app, int& rc);
void add_make_model_command(CLI::App& app, int& rc);
void add_bench_command(CLI::App& app, int& rc);
void add_tokenize_commands(CLI::App& app, int& rc);  // tokenize and detokenize
void add_prompt_commands(CLI::App& app, int& rc);    // prompt and toolcall
void add_chat_command(CLI::App& app, int& rc);
void add_perplexity_command(CLI::App& app, int& rc);
void add_eval_command(CLI::App& app, int& rc);
void add_info_command(CLI::App& app, int& rc);  // the model and how it would run
void add_index_commands(CLI::App& app, int& rc);  // index build and index search (docs/rag.md)
void add_serve_command(CLI::App& app, int& rc);   // the OpenAI-compatible server (docs/serve.md)
void add_plan_command(CLI::App& app, int& rc);    // GPU memory of a deployment, before loading it
void add_quantize_command(CLI::App& app, int& rc);  // a model written as FP8, AWQ, GPTQ or GGUF

}  // namespace herd_cli
