// herd perplexity: exp of the mean negative log-likelihood of a text under the model, the way
// llama.cpp's perplexity tool and most papers score it: the text in windows that each start with
// BOS when the model adds one (else with the text token before them), every token after a
// window's first scored. Windows run concurrently through the engine.
#include <cmath>
#include <limits>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "progress.h"

namespace herd_cli {
namespace {

struct Flags {
  herd::EngineOptions engine;
  std::string model, file;
  int ctx = 0;  // 0: the default
  bool json = false, bos = false, no_bos = false;
};

int run(const Flags& f) {
  std::string text;
  if (int rc = report(herd::read_file(f.file, herd::FileKind::text, &text))) return rc;

  std::unique_ptr<herd::Engine> engine;
  if (int rc = report(herd::Engine::load(f.model, f.engine, &engine))) return rc;
  const herd::Tokenizer* tok = engine->tokenizer();
  if (!tok) return report(herd::Status::invalid_input(f.model + ": perplexity needs the model's tokenizer"));
  // BOS as the model's own text starts (a GGUF's tokenizer.ggml.add_bos_token), unless told.
  const bool add_bos = f.bos || (!f.no_bos && tok->adds_bos());
  if (add_bos && tok->bos_id() < 0)
    return report(herd::Status::invalid_input(f.model + ": the vocabulary has no BOS token to start windows with; "
                                              "pass --no-bos"));
  std::vector<int32_t> ids;
  if (int rc = report(tok->encode(text, /*allow_special=*/false, /*add_bos=*/false, &ids))) return rc;
  // Without BOS the text's first token has no context: scoring starts at the second.
  const size_t first = add_bos ? 0 : 1;
  if (ids.size() <= first) return report(herd::Status::invalid_input(f.file + ": no text to score"));

  // A window is one context token (BOS, or the text token before the window's) plus n - 1 text
  // tokens, all scored; default: the whole text when the model can hold it. Each request also
  // asks for one generated token, so a window must leave room for it.
  const int64_t limit = engine->info().max_context;
  const int64_t whole = int64_t(ids.size() - first) + 1;
  const int64_t window = f.ctx > 0 ? f.ctx : whole < limit ? whole : std::min<int64_t>(2048, limit - 1);
  if (window >= limit)
    return report(herd::Status::invalid_input("--ctx " + std::to_string(window) + " must be less than " +
                                              std::to_string(limit) + " for this model and KV budget"));
  std::vector<herd::RequestId> requests;
  for (size_t start = first; start < ids.size(); start += size_t(window - 1)) {
    herd::GenerateRequest r;
    r.prompt.push_back(add_bos ? tok->bos_id() : ids[start - 1]);
    const size_t end = std::min(ids.size(), start + size_t(window - 1));
    r.prompt.insert(r.prompt.end(), ids.begin() + long(start), ids.begin() + long(end));
    r.max_tokens = 1;
    r.prompt_logprobs = true;
    r.sampling.temperature = 0.0f;
    herd::RequestId id;
    if (int rc = report(engine->submit(r, &id))) return rc;
    requests.push_back(id);
  }

  Progress progress("perplexity", int64_t(requests.size()), "windows");
  double nll = 0.0;
  int64_t scored = 0;
  for (size_t w = 0; w < requests.size(); ++w) {
    for (herd::Event e; engine->next_event(requests[w], &e);) {
      if (e.type == herd::Event::Type::prompt) {
        for (const herd::Logprob& lp : e.prompt_logprobs) nll -= double(lp.logprob);
        scored += int64_t(e.prompt_logprobs.size());
      } else if (e.type == herd::Event::Type::finished && e.finish_reason == herd::FinishReason::error) {
        return report(herd::Status::internal(e.error));
      }
    }
    progress.update(int64_t(w + 1), scored);
  }
  progress.finish();
  const double ppl = std::exp(nll / double(scored));
  if (f.json) {
    std::cout << nlohmann::json{{"perplexity", ppl}, {"nll", nll}, {"n_tokens", scored}}.dump() << "\n";
  } else {
    std::printf("perplexity %.4f over %lld tokens in %zu window(s) of up to %lld (nll %.2f)\n", ppl,
                static_cast<long long>(scored), requests.size(), static_cast<long long>(window), nll);
  }
  return 0;
}

}  // namespace

void add_perplexity_command(CLI::App& app, int& rc) {
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "perplexity",
      "Perplexity of a text file: tokenized without BOS, cut into windows of --ctx tokens that each start with BOS "
      "when the model adds one (its add_bos_token; else with the text token before the window, and the text's "
      "first token is not scored), every token after a window's first scored; exp(total negative log-likelihood / "
      "tokens scored). The windows run at once through the batching engine.");
  cmd->add_option("-m,--model", f->model, "Model: a directory (config.json, *.safetensors, tokenizer) or a GGUF file")
      ->required();
  cmd->add_option("-f,--file", f->file, "The text (UTF-8)")->required();
  cmd->add_option("-c,--ctx-size,--ctx", f->ctx,
                  "Tokens per window, its first included (default: the whole text when it fits the model's context, "
                  "else 2048)")
      ->check(int_range(2, std::numeric_limits<int32_t>::max()));
  auto* bos = cmd->add_flag("--bos", f->bos, "Start each window with BOS, whatever the model says");
  auto* no_bos = cmd->add_flag("--no-bos", f->no_bos, "Never use BOS: a window starts with the text token before it");
  bos->excludes(no_bos);
  cmd->add_flag("--json", f->json, "Print {\"perplexity\": p, \"nll\": total, \"n_tokens\": scored}");
  add_engine_flags(cmd, f->engine);
  cmd->callback([f, &rc] { rc = run(*f); });
}

}  // namespace herd_cli
