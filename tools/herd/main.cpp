// herd: one binary, one subcommand per job (docs/cli.md).
#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <optional>

#include "commands.h"

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The name in `names` that `word` most likely misspells: within a few edits, or a name that
// starts it or that it starts ("--temperature" for "--temp").
std::optional<std::string> closest(const std::string& word, const std::vector<std::string>& names) {
  const std::string bare = word.substr(std::min(word.find_first_not_of('-'), word.size()));
  std::optional<std::string> best;
  size_t best_distance = 0;
  for (const std::string& name : names) {
    const std::string name_bare = name.substr(std::min(name.find_first_not_of('-'), name.size()));
    const size_t d = edit_distance(bare, name_bare);
    const bool prefix = std::min(bare.size(), name_bare.size()) >= 3 &&
                        (bare.starts_with(name_bare) || name_bare.starts_with(bare));
    if ((d <= std::max<size_t>(2, bare.size() / 3) || prefix) && (!best || d < best_distance)) best = name, best_distance = d;
  }
  return best;
}

std::vector<std::string> flag_names(const CLI::App& cmd) {
  std::vector<std::string> names;
  for (const CLI::Option* opt : cmd.get_options()) {
    for (const std::string& n : opt->get_lnames()) names.push_back("--" + n);
    for (const std::string& n : opt->get_snames()) names.push_back("-" + n);
  }
  return names;
}

bool is_number(const std::string& s) {
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size();
}

// One line for a command line that did not parse: an unknown command or flag named, with the
// likely intended one; every error points at the help that lists the right ones.
std::string explain(const CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  std::vector<std::string> commands;
  const std::string first = argc > 1 ? argv[1] : "";
  const CLI::App* cmd = nullptr;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    commands.push_back(sub->get_name());
    if (sub->get_name() == first) cmd = sub;
  }
  if (!first.empty() && first[0] != '-' && !cmd) {
    const auto guess = closest(first, commands);
    return "unknown command '" + first + "'" + (guess ? "; did you mean " + *guess + "?" : "") + " (see herd --help)";
  }
  if (!cmd) return std::string(e.what()) + " (see herd --help)";
  const std::string help = " (see herd " + cmd->get_name() + " --help)";
  if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
    const std::vector<std::string> names = flag_names(*cmd);
    for (int i = 2; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--") break;
      if (arg.size() < 2 || arg[0] != '-' || is_number(arg)) continue;
      const std::string name = arg.substr(0, arg.find('='));
      // A bundle of short flags or "-n5" starts with a known short one.
      if (std::find(names.begin(), names.end(), name.substr(0, name[1] == '-' ? name.size() : 2)) != names.end()) continue;
      const auto guess = closest(name, names);
      return cmd->get_name() + ": unknown flag " + name + (guess ? "; did you mean " + *guess + "?" : "") + help;
    }
  }
  return cmd->get_name() + ": " + e.what() + help;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"herd: a Llama 3.1 inference engine (CPU and CUDA)", "herd"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "herd 0.1.0");
  app.footer("Exit codes: 0 success, 1 internal failure, 2 bad input, 130 interrupted.\n"
             "Run `herd COMMAND --help` for each command's flags. Spellings llama.cpp users know work too: "
             "-c/--ctx-size (context length), -t (--threads), -f FILE (a prompt or text file), -n (tokens to make).");
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
  herd_cli::add_info_command(app, rc);
  herd_cli::add_index_commands(app, rc);
  herd_cli::add_plan_command(app, rc);
  herd_cli::add_quantize_command(app, rc);
#ifdef HERD_HAVE_SERVE
  herd_cli::add_serve_command(app, rc);
#else
  app.add_subcommand("serve", "An OpenAI-compatible HTTP server (not in this build)")
      ->allow_extras()
      ->callback([&rc] {
        rc = herd_cli::report(herd::Status::invalid_input(
            "this herd was built without cpp-httplib, so it cannot serve: install libcpp-httplib-dev and rebuild"));
      });
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "herd: error: " << explain(app, e, argc, argv) << "\n";
    return 2;
  } catch (const herd_cli::RankExit& e) {
    return e.rc;  // a follower rank: it followed rank 0 instead of running the command
  }
  return rc;
}
