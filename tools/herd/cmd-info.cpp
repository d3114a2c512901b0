// herd info: what a model is and how it would run here, without running it (docs/cli.md). The
// same facts `herd chat` prints as it starts.
#include <iostream>

#include "cmd-chat.h"
#include "commands.h"
#include "model-summary.h"

namespace herd_cli {

void add_info_command(CLI::App& app, int& rc) {
  struct InfoFlags {
    std::string model;
    herd::EngineOptions engine;
    bool json = false;
  };
  auto f = std::make_shared<InfoFlags>();
  CLI::App* cmd = app.add_subcommand(
      "info", "A model's name, size, weight types, context, chat format, device, KV budget and the sampling "
              "`herd chat` would use (the flags of `chat` change the device and the KV budget as they would there)");
  cmd->add_option("-m,--model", f->model, "Model directory or GGUF file")->required();
  cmd->add_flag("--json", f->json, "One JSON object instead of text lines");
  add_engine_flags(cmd, f->engine);
  cmd->callback([f, &rc] {
    std::unique_ptr<herd::Engine> engine;
    if ((rc = report(herd::Engine::load(f->model, f->engine, &engine)))) return;
    const auto summary = model_summary(*engine, engine->tokenizer(), chat::chat_settings(engine->info(), {}, false, {}));
    std::cout << (f->json ? summary.dump() + "\n" : summary_text(summary));
  });
}

}  // namespace herd_cli
