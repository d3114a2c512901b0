// herd generate: continue a prompt through the batching engine, streamed as it is made.
#include <cstdio>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>

#include "commands.h"

namespace herd_cli {
namespace {

// A token's text as a quoted, escaped literal ("\n", " Paris"); bytes that are not whole UTF-8
// characters (half of one, a byte token) show as \xNN.
std::string token_literal(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    for (size_t k = 1; k < n; ++k)
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) n = 0;
    char hex[8];
    if (n > 1) out.append(s, i, n);
    else if (c == '"' || c == '\\') out += std::string("\\") + char(c);
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (n == 1 && c >= 0x20 && c != 0x7F) out += char(c);
    else std::snprintf(hex, sizeof hex, "\\x%02X", c), out += hex;
    i += n ? n : 1;
  }
  return out + "\"";
}

// One line per token for --logprobs without --json: its text, its logprob, the alternatives.
std::string logprob_line(const herd::Event& ev, const herd::Tokenizer* tok) {
  auto piece = [tok](int32_t id) {
    std::string text;
    if (tok && tok->decode({id}, &text)) return token_literal(text);
    return "id " + std::to_string(id);
  };
  char lp[32];
  std::snprintf(lp, sizeof lp, "%.4f", double(ev.logprob));
  std::string line = piece(ev.token) + "\t" + lp + "\ttop:";
  for (size_t i = 0; i < ev.top_logprobs.size(); ++i) {
    std::snprintf(lp, sizeof lp, "%.4f", double(ev.top_logprobs[i].logprob));
    line += (i ? ", " : " ") + piece(ev.top_logprobs[i].token) + " " + lp;
  }
  return line + "\n";
}

}  // namespace

void add_generate_command(CLI::App& app, int& rc) {
  struct Flags {
    herd::EngineOptions engine;
    herd::SamplingOptions sampling;
    std::string model, ids, prompt, prompt_file;
    int n = 16, samples = 1;
    bool json = false, chat = false, aliases = false, prompt_logprobs = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "generate",
      "Continue a prompt through the batching engine; stops at the model's end-of-sequence ids, a --stop string, or "
      "after -n tokens. Prints text when the model directory has a tokenizer, else ids; the KV capacity goes to "
      "stderr. Sampling defaults come from generation_config.json, greedy without it.");
  cmd->add_option("-m,--model", f->model, "Model: a directory (config.json or params.json, *.safetensors or consolidated.NN.pth, tokenizer) or a GGUF file")
      ->required();
  auto* ids_opt = cmd->add_option("--ids", f->ids, "Prompt as comma-separated token ids (no BOS is added)");
  auto* p_opt = cmd->add_option("-p,--prompt", f->prompt,
                                "Prompt text, encoded by the model's tokenizer (BOS first when the model adds one); "
                                "special-token text stays plain text");
  auto* file_opt = cmd->add_option("-f,--file", f->prompt_file, "Prompt text from a file, as -p takes it");
  ids_opt->excludes(p_opt)->excludes(file_opt);
  p_opt->excludes(file_opt);
  auto* chat_opt = cmd->add_flag("--chat", f->chat,
                                 "The prompt text is one user turn, rendered in the model's chat format: Llama 3.1, or ChatML when its template is ChatML (docs/prompt-format.md)");
  auto* aliases_opt = cmd->add_flag("--aliases", f->aliases,
                                    "In the prompt text, the alias notation <<start>> <<system>> <<user>> <<assistant>> "
                                    "<<ipython>> <<end>> <<stop>> <<continue>> stands for the special tokens, and "
                                    "special-token text is honoured; no BOS is added (write <<start>>)");
  chat_opt->excludes(aliases_opt)->excludes(ids_opt);
  aliases_opt->excludes(ids_opt);
  cmd->add_option("-n,--n-predict,--max-tokens", f->n, "Most tokens to generate")
      ->capture_default_str()
      ->check(int_range(1, std::numeric_limits<int32_t>::max()));
  cmd->add_flag("--json", f->json,
                "Print {\"samples\": [{\"ids\", \"text\"?, \"finish_reason\"}], \"usage\": {...}} instead of streaming");
  add_sampling_flags(cmd, f->sampling);
  cmd->add_option("--logprobs", f->sampling.logprobs,
                  "Each token's logprob and this many alternatives (0 to 20): in --json, else one line per token "
                  "(its text quoted, its logprob, the alternatives) instead of the text")
      ->capture_default_str()
      ->check(int_range(0, 20));
  cmd->add_option("--samples", f->samples,
                  "Samples of the prompt (1 to 256), sharing its KV blocks; sample i uses seed + i. As text, "
                  "each ends with a newline and a line '--- sample N ---' comes before sample N >= 2")
      ->capture_default_str()
      ->check(int_range(1, 256));
  cmd->add_flag("--prompt-logprobs", f->prompt_logprobs,
                "With --json: the logprob of each prompt token given the ones before it (null for the first)");
  add_engine_flags(cmd, f->engine);
  cmd->callback([f, &rc, ids_opt, p_opt, file_opt] {
    if (ids_opt->count() + p_opt->count() + file_opt->count() == 0)
      throw CLI::ValidationError("--ids, -p or -f", "give the prompt as token ids, text, or a text file");
    if (file_opt->count() && (rc = report(herd::read_file(f->prompt_file, herd::FileKind::text, &f->prompt)))) return;
    std::unique_ptr<herd::Engine> engine;
    if ((rc = report(herd::Engine::load(f->model, f->engine, &engine)))) return;
    const herd::EngineStats st = engine->stats();
    std::cerr << "herd: " << engine->info().device << ", KV cache of " << st.kv_capacity_tokens << " tokens ("
              << st.kv_blocks_total << " blocks of " << st.block_size << ", "
              << (st.kv_capacity_tokens * st.kv_bytes_per_token) / (1 << 20) << " MiB)\n";
    herd::GenerateRequest req;
    if (ids_opt->count()) {
      req.prompt = parse_ids(f->ids, "--ids");
    } else if (f->chat) {
      herd::Message turn;
      turn.role = "user";
      turn.content = f->prompt;
      req.conversation.emplace();
      req.conversation->messages.push_back(std::move(turn));
    } else if (f->aliases) {  // tokenized here: the aliases stand for special tokens
      const herd::Tokenizer* tok = engine->tokenizer();
      herd::Status s = tok ? tok->encode(herd::expand_aliases(f->prompt), /*allow_special=*/true, /*add_bos=*/false,
                                         &req.prompt)
                           : herd::Status::invalid_input(f->model + ": --aliases needs the model's tokenizer");
      if ((rc = report(s))) return;
    } else {
      req.text = f->prompt;
    }
    req.max_tokens = f->n;
    req.sampling = f->sampling;
    req.prompt_logprobs = f->prompt_logprobs;
    req.n_samples = f->samples;

    herd::RequestId id;
    if ((rc = report(engine->submit(req, &id)))) return;
    const bool text_out = engine->has_tokenizer();
    // --logprobs as text shows each token's and its alternatives' text.
    const herd::Tokenizer* tok = engine->tokenizer();
    const bool logprob_lines = f->sampling.logprobs > 0 && !f->json;
    // Samples are read one after another: sample 0 streams as it is made, the others' events wait
    // in their queues. Each sample's output ends with a newline; a header line starts each after
    // the first.
    nlohmann::json samples = nlohmann::json::array();
    herd::Usage usage;
    for (int i = 0; i < f->samples; ++i) {
      if (!f->json && i > 0) std::cout << "--- sample " << i + 1 << " ---\n";
      std::vector<int32_t> out;
      std::string text;
      nlohmann::json logprobs = nlohmann::json::array(), prompt_logprobs = nlohmann::json::array();
      herd::Event ev;
      while (engine->next_event(id + uint64_t(i), &ev)) {
        if (ev.type == herd::Event::Type::prompt) {
          prompt_logprobs.push_back(nullptr);  // the first prompt token has no context
          for (const auto& t : ev.prompt_logprobs) prompt_logprobs.push_back({{"token", t.token}, {"logprob", json_float(t.logprob)}});
          continue;
        }
        text += ev.text;
        if (ev.type == herd::Event::Type::token) {
          out.push_back(ev.token);
          if (f->sampling.logprobs > 0) {
            nlohmann::json top = nlohmann::json::array();
            for (const auto& t : ev.top_logprobs) top.push_back({{"token", t.token}, {"logprob", json_float(t.logprob)}});
            logprobs.push_back({{"token", ev.token}, {"logprob", json_float(ev.logprob)}, {"top", top}});
          }
          // Text when the model has a tokenizer, else the ids, space-separated.
          if (logprob_lines) std::cout << logprob_line(ev, tok) << std::flush;
          else if (!f->json) std::cout << (text_out ? ev.text : (out.size() > 1 ? " " : "") + std::to_string(ev.token)) << std::flush;
          continue;
        }
        if (!f->json && !logprob_lines) std::cout << ev.text << "\n";
        if (ev.finish_reason == herd::FinishReason::error) {
          rc = report(herd::Status::internal(ev.error));
          return;
        }
        if (i == 0) usage = ev.usage;
        else usage.completion_tokens += ev.usage.completion_tokens;
        nlohmann::json sample = {{"ids", out}, {"finish_reason", herd::finish_reason_name(ev.finish_reason)}};
        if (text_out) sample["text"] = text;
        if (f->sampling.logprobs > 0) sample["logprobs"] = logprobs;
        if (i == 0 && req.prompt_logprobs) sample["prompt_logprobs"] = prompt_logprobs;
        samples.push_back(std::move(sample));
      }
    }
    if (!f->json) return;
    const nlohmann::json j = {{"samples", samples},
                              {"usage",
                               {{"prompt_tokens", usage.prompt_tokens},
                                {"completion_tokens", usage.completion_tokens},
                                {"cached_prompt_tokens", usage.cached_prompt_tokens}}}};
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  });
}

}  // namespace herd_cli
