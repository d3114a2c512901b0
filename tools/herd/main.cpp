// herd: one binary, one subcommand per job (docs/cli.md).
#include <iostream>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"herd: a Llama 3.1 inference engine (CPU and CUDA)", "herd"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "herd 0.1.0");
  app.footer("Exit codes: 0 success, 1 internal failure, 2 bad input, 130 interrupted.\n"
             "Run `herd COMMAND --help` for each command's flags.");
  int rc = 0;
  herd_cli::add_logits_command(app, rc);
  herd_cli::add_generate_command(app, rc);
  herd_cli::add_make_model_command(app, rc);
  herd_cli::add_bench_command(app, rc);
  herd_cli::add_tokenize_commands(app, rc);
  herd_cli::add_prompt_commands(app, rc);
  herd_cli::add_chat_command(app, rc);
  herd_cli::add_perplexity_command(app, rc);
  herd_cli::add_eval_command(app, rc);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "herd: error: " << e.what() << " (see herd --help)\n";
    return 2;
  }
  return rc;
}
