// herd make-model: a random-weight model in a real safetensors directory, for tests and benchmarks.
#include <limits>

#include "commands.h"

namespace herd_cli {

void add_make_model_command(CLI::App& app, int& rc) {
  auto spec = std::make_shared<herd::SyntheticModelSpec>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "make-model", "Write a model with random weights (config.json + model.safetensors) for tests and benchmarks");
  cmd->add_option("--config", spec->config_path, "A config.json to follow, e.g. a preset from models/")->required();
  cmd->add_option("-o,--out", *out, "Output directory (created)")->required();
  cmd->add_option("--layers", spec->n_layer, "Override the number of layers (1 to 1024)")->check(int_range(1, 1024));
  cmd->add_option("--vocab", spec->n_vocab, "Override the vocabulary size")
      ->check(int_range(1, std::numeric_limits<int32_t>::max()));
  cmd->add_option("--dtype", spec->dtype, "bf16, f16 or f32")->capture_default_str()->check(CLI::IsMember({"bf16", "f16", "f32"}));
  cmd->add_option_function<std::string>(
         "--seed", [spec](const std::string& text) { spec->seed = parse_seed(text, "--seed"); },
         "Random seed, 0 to 2^64-1 (default 0)");
  cmd->callback([spec, out, &rc] { rc = report(herd::write_synthetic_model(*spec, *out)); });
}

}  // namespace herd_cli
