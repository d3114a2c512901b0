// herd generate: greedy continuation of a prompt, streamed as it is made.
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"

namespace herd_cli {

void add_generate_command(CLI::App& app, int& rc) {
  struct Flags {
    ModelFlags model;
    std::string ids, prompt;
    int n = 16;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "generate", "Continue a prompt greedily; stops at the model's end-of-sequence ids or after -n tokens");
  add_model_flags(cmd, f->model);
  auto* ids_opt = cmd->add_option("--ids", f->ids, "Prompt as comma-separated token ids (no BOS is added)");
  auto* p_opt = cmd->add_option("-p,--prompt", f->prompt,
                                "Prompt text, encoded by the model directory's tokenizer with BOS first; "
                                "special-token text stays plain text");
  ids_opt->excludes(p_opt);
  cmd->add_option("-n,--max-tokens", f->n, "Most tokens to generate")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", f->json,
                "Print {\"samples\": [{\"ids\", \"text\"?, \"finish_reason\"}], \"usage\": {...}} instead of streaming");
  cmd->callback([f, &rc, ids_opt, p_opt] {
    if (ids_opt->count() + p_opt->count() == 0) throw CLI::RequiredError("--ids or -p");
    std::unique_ptr<herd::Model> model;
    if ((rc = report(herd::Model::load(f->model.path, f->model.options, &model)))) return;
    // The tokenizer sits in the model directory; without one, ids in and ids out.
    std::unique_ptr<herd::Tokenizer> tok;
    std::vector<int32_t> prompt;
    if (p_opt->count()) {
      const herd::Status s = herd::Tokenizer::load(f->model.path, &tok);
      if (!s) {
        rc = report(herd::Status::invalid_input("-p needs a tokenizer in the model directory (" + s.message() +
                                                "); pass --ids instead"));
        return;
      }
      if ((rc = report(tok->encode(f->prompt, /*allow_special=*/false, tok->bos_id() >= 0, &prompt)))) return;
    } else {
      prompt = parse_ids(f->ids, "--ids");
    }
    std::unique_ptr<herd::TokenStream> stream;
    if (tok) stream = std::make_unique<herd::TokenStream>(*tok);
    std::string text;
    bool first = true;
    auto on_token = [&](int32_t id) {
      if (stream) {
        std::string piece;
        if (!stream->push(id, &piece)) return false;
        text += piece;
        if (!f->json) std::cout << piece << std::flush;
      } else if (!f->json) {
        std::cout << (first ? "" : " ") << id << std::flush;
      }
      first = false;
      return true;
    };
    std::vector<int32_t> out;
    if ((rc = report(model->generate_greedy(prompt, f->n, &out, on_token)))) return;
    if (stream) {
      std::string rest;
      stream->flush(&rest);
      text += rest;
      if (!f->json) std::cout << rest;
    }
    const auto& eos = model->info().eos_ids;
    const bool stopped = !out.empty() && std::find(eos.begin(), eos.end(), out.back()) != eos.end();
    if (!f->json) {
      std::cout << "\n";
      return;
    }
    nlohmann::json sample = {{"ids", out}, {"finish_reason", stopped ? "stop" : "length"}};
    if (tok) sample["text"] = text;
    const nlohmann::json j = {
        {"samples", {sample}},
        {"usage", {{"prompt_tokens", prompt.size()}, {"completion_tokens", out.size()}, {"cached_prompt_tokens", 0}}}};
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  });
}

}  // namespace herd_cli
