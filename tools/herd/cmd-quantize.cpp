// herd quantize: a Hugging Face model directory (BF16, F16 or F32) written as a quantized checkpoint
// that herd, transformers, vLLM or llama.cpp load (docs/quantized.md, "Writing quantized checkpoints").
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>

#include "commands.h"
#include "progress.h"

namespace herd_cli {

namespace {

struct QuantizeFlags {
  std::string in, out, type;
  herd::QuantizeOptions options;
  int n_threads = 0;
};

std::string type_list() {
  std::string s;
  for (const std::string& n : herd::quant_type_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

int run(const QuantizeFlags& f, const CLI::App* cmd) {
  herd::QuantizeOptions o = f.options;
  if (!herd::quant_type_from_name(f.type, &o.type))
    return report(herd::Status::invalid_input("quantize: --type '" + f.type + "' is not one of " + type_list()));
  const bool int4 = o.type == herd::QuantType::awq || o.type == herd::QuantType::gptq;
  if (!int4 && cmd->count("--group-size") > 0)
    return report(herd::Status::invalid_input("quantize: --group-size applies to awq and gptq, not to " + f.type));
  o.n_threads = f.n_threads;
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<Progress> progress;
  int64_t bytes = 0;
  const herd::Status s = herd::quantize_model(f.in, f.out, o, [&](const herd::QuantizeProgress& p) {
    if (!progress) {
      progress = std::make_unique<Progress>("quantize", p.total_tensors, "tensors");
      progress->rate_unit = "MB/s";
      progress->line_interval_s = 5;
    }
    bytes = p.total_bytes;
    progress->update(p.done_tensors, p.done_bytes / 1000000);
  });
  if (progress) progress->finish();
  if (!s.is_ok()) return report(s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "herd: wrote %s (%s) from %.1f MB of weights in %.1f s\n", f.out.c_str(),
               herd::quant_type_name(o.type), double(bytes) / 1e6, seconds);
  return 0;
}

}  // namespace

void add_quantize_command(CLI::App& app, int& rc) {
  auto f = std::make_shared<QuantizeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "quantize",
      "Write a Hugging Face model directory (BF16, F16 or F32 safetensors) as a quantized checkpoint: "
      "compressed-tensors FP8, AWQ or GPTQ (a model directory) or a llama.cpp GGUF file (docs/quantized.md)");
  cmd->add_option("-m,--model", f->in, "The model directory to read (config.json, *.safetensors)")->required();
  cmd->add_option("-o,--out", f->out,
                  "What to write: a new directory (fp8, awq, gptq) or a new .gguf file (the GGUF types); "
                  "it must not exist (never overwritten)")
      ->required();
  cmd->add_option("--type", f->type,
                  "fp8: compressed-tensors FP8_DYNAMIC (E4M3 weights, a scale per output row; vLLM, transformers); "
                  "awq: AutoAWQ GEMM, 4 bits with zero points, per --group-size columns; "
                  "gptq: GPTQModel, 4 bits symmetric, per --group-size columns (round to nearest, no calibration); "
                  "q8_0, q4_0, q4_1, q4_k_m, q5_k_m, q6_k: GGUF as llama.cpp's convert_hf_to_gguf.py + llama-quantize write "
                  "it (needs Llama 3's tokenizer.json). The embedding, norms and LM head keep their type except in "
                  "GGUF")
      ->required();
  cmd->add_option("--group-size", f->options.group_size,
                  "awq and gptq: input columns per scale, a multiple of 32 that divides every layer's input width")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](const std::string& text) -> std::string {
            try {
              size_t used = 0;
              const long long g = std::stoll(text, &used);
              if (used == text.size() && g >= 32 && g <= (1 << 20) && g % 32 == 0) return "";
            } catch (const std::exception&) {
            }
            return "'" + text + "' is not a multiple of 32 from 32 to 1048576";
          },
          "INT", ""));
  cmd->add_option("-t,--threads", f->n_threads, "CPU threads (0 = one per core)")
      ->capture_default_str()
      ->check(int_range(0, 1024));
  cmd->callback([f, cmd, &rc] { rc = run(*f, cmd); });
}

}  // namespace herd_cli
