// herd generate: greedy continuation of a prompt, streamed as it is made.
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"

namespace herd_cli {

void add_generate_command(CLI::App& app, int& rc) {
  struct Flags {
    ModelFlags model;
    std::string ids;
    int n = 16;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("generate", "Continue a prompt greedily; stops at the model's end-of-sequence ids or after -n tokens");
  add_model_flags(cmd, f->model);
  cmd->add_option("--ids", f->ids, "Prompt as comma-separated token ids (no BOS is added)")->required();
  cmd->add_option("-n,--max-tokens", f->n, "Most tokens to generate")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", f->json, "Print {\"samples\": [{\"ids\", \"finish_reason\"}], \"usage\": {...}} instead of streaming ids");
  cmd->callback([f, &rc] {
    const std::vector<int32_t> prompt = parse_ids(f->ids, "--ids");
    std::unique_ptr<herd::Model> model;
    if ((rc = report(herd::Model::load(f->model.path, f->model.options, &model)))) return;
    bool first = true;
    auto stream = [&](int32_t tok) {
      if (!f->json) {
        std::cout << (first ? "" : " ") << tok << std::flush;
        first = false;
      }
      return true;
    };
    std::vector<int32_t> out;
    if ((rc = report(model->generate_greedy(prompt, f->n, &out, stream)))) return;
    const auto& eos = model->info().eos_ids;
    const bool stopped = !out.empty() && std::find(eos.begin(), eos.end(), out.back()) != eos.end();
    if (!f->json) {
      std::cout << "\n";
      return;
    }
    nlohmann::json j = {
        {"samples", {{{"ids", out}, {"finish_reason", stopped ? "stop" : "length"}}}},
        {"usage", {{"prompt_tokens", prompt.size()}, {"completion_tokens", out.size()}, {"cached_prompt_tokens", 0}}}};
    std::cout << j.dump() << "\n";
  });
}

}  // namespace herd_cli
