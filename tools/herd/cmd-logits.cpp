// herd logits: raw logits of a token sequence, as JSON.
#include <iostream>

#include "commands.h"

namespace herd_cli {

void add_logits_command(CLI::App& app, int& rc) {
  struct Flags {
    ModelFlags model;
    std::string ids;
    bool all = false;
  };
  auto f = std::make_shared<Flags>();
  f->model.options.device = "auto";
  CLI::App* cmd = app.add_subcommand("logits", "Print the logits of a token sequence as {\"n_vocab\": V, \"logits\": [[...]]}");
  add_model_flags(cmd, f->model);
  cmd->add_option("--ids", f->ids, "Comma-separated token ids, run as given (no BOS is added)")->required();
  cmd->add_flag("--all", f->all, "One row per position instead of only the last");
  cmd->callback([f, &rc] {
    const std::vector<int32_t> ids = parse_ids(f->ids, "--ids");
    std::unique_ptr<herd::Model> model;
    if ((rc = report(herd::Model::load(f->model.path, f->model.options, &model)))) return;
    std::vector<float> logits;
    if ((rc = report(model->logits(ids, f->all, &logits)))) return;
    const int64_t n_vocab = model->info().n_vocab;
    std::string out = "{\"n_vocab\": " + std::to_string(n_vocab) + ", \"logits\": [";
    for (size_t r = 0; r < logits.size() / size_t(n_vocab); ++r) {
      out += r ? ", [" : "[";
      for (int64_t j = 0; j < n_vocab; ++j) {
        if (j) out += ", ";
        print_float(out, logits[r * size_t(n_vocab) + size_t(j)]);
      }
      out += "]";
    }
    out += "]}\n";
    std::cout << out;
  });
}

}  // namespace herd_cli
