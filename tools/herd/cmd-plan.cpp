// herd plan: will a model fit on these GPUs, and how many full-context sequences then (docs/cli.md,
// docs/distributed.md "Memory planner"). Nothing is loaded: a preset, or a model's config and tensor types.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <limits>

#include <nlohmann/json.hpp>

#include "commands.h"

namespace herd_cli {
namespace {

struct PlanFlags {
  std::vector<std::string> models;
  std::vector<int> gpus = {1};
  std::vector<std::pair<std::string, int64_t>> gpu_memory;  // as typed, and bytes
  std::vector<std::string> dtypes = {"stored"};
  herd::MemoryPlanOptions options;
  bool json = false;
};

// "a,b,c" -> {"a", "b", "c"}; an empty item is an error naming the flag.
std::vector<std::string> split_list(const std::string& text, const std::string& flag) {
  std::vector<std::string> items;
  size_t start = 0;
  for (;;) {
    const size_t end = std::min(text.find(',', start), text.size());
    items.push_back(text.substr(start, end - start));
    if (items.back().empty()) throw CLI::ValidationError(flag, "'" + text + "' has an empty item (expected A,B,...)");
    if (end == text.size()) return items;
    start = end + 1;
  }
}

int parse_gpus(const std::string& text) {
  int n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p != text.data() + text.size() || n < 1 || n > 4096)
    throw CLI::ValidationError("--gpus", "'" + text + "' is not a GPU count from 1 to 4096");
  return n;
}

std::string json_text(const std::vector<herd::MemoryPlan>& plans) {
  nlohmann::json out = nlohmann::json::array();
  for (const herd::MemoryPlan& p : plans) {
    nlohmann::json rows = nlohmann::json::array();
    for (const herd::MemoryPlanRow& r : p.rows)
      rows.push_back({{"item", r.item}, {"value", r.value}, {"arithmetic", r.arithmetic}});
    out.push_back({{"model", p.model},
                   {"weight_dtype", p.weight_dtype},
                   {"kv_dtype", p.kv_dtype},
                   {"gpus", p.n_gpus},
                   {"tensor_parallel", p.tensor_parallel},
                   {"replicas", p.n_replicas},
                   {"kv_heads_per_rank", p.n_head_kv_rank},
                   {"context", p.context},
                   {"block_size", p.block_size},
                   {"max_batch_tokens", p.max_batch_tokens},
                   {"gpu_memory", p.gpu_memory},
                   {"gpu_util", p.gpu_util},
                   {"budget_bytes", p.budget_bytes},
                   {"weight_bytes", p.weight_bytes},
                   {"workspace_bytes", p.workspace_bytes},
                   {"kv_cache_bytes", p.kv_cache_bytes},
                   {"kv_bytes_per_token", p.kv_bytes_per_token},
                   {"kv_blocks", p.kv_blocks},
                   {"kv_tokens", p.kv_tokens},
                   {"sequences", p.n_sequences},
                   {"fits", p.fits},
                   {"verdict", p.verdict},
                   {"rows", rows}});
  }
  return nlohmann::json{{"plans", out}}.dump() + "\n";
}

// One plan: its rows in three aligned columns, then the verdict.
std::string detail_text(const herd::MemoryPlan& p, const std::string& memory) {
  std::string out = p.model + " on " + std::to_string(p.n_gpus) + " GPU" + (p.n_gpus == 1 ? "" : "s") + " of " +
                    memory + ": weights " + p.weight_dtype + ", KV cache " + p.kv_dtype + ", context " +
                    std::to_string(p.context) + ", blocks of " + std::to_string(p.block_size) + " tokens, steps of " +
                    std::to_string(p.max_batch_tokens) + " tokens\n\n";
  std::vector<herd::MemoryPlanRow> rows = {{"item", "per GPU", "arithmetic"}};
  rows.insert(rows.end(), p.rows.begin(), p.rows.end());
  size_t w_item = 0, w_value = 0;
  for (const herd::MemoryPlanRow& r : rows) w_item = std::max(w_item, r.item.size()), w_value = std::max(w_value, r.value.size());
  for (const herd::MemoryPlanRow& r : rows) {
    std::string line = r.item + std::string(w_item + 2 - r.item.size(), ' ') + std::string(w_value - r.value.size(), ' ') +
                       r.value + "  " + r.arithmetic;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out + "\n" + p.verdict + "\n";
}

std::string gib(int64_t bytes) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f GiB", double(bytes) / double(int64_t(1) << 30));
  return s;
}

// Several plans: one Markdown table row each.
std::string table_text(const std::vector<herd::MemoryPlan>& plans, const std::vector<std::string>& dtypes,
                       const std::vector<std::string>& memories) {
  std::string out =
      "| model | weights | GPUs x memory | TP | weights/GPU | workspace/GPU | KV cache/GPU | KV tokens | full contexts "
      "| fits |\n|---|---|---|---|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < plans.size(); ++i) {
    const herd::MemoryPlan& p = plans[i];
    std::string weights = dtypes[i] == "stored" ? p.weight_dtype : dtypes[i];
    std::transform(weights.begin(), weights.end(), weights.begin(), [](unsigned char ch) { return char(std::toupper(ch)); });
    const std::string fits = p.fits                 ? "yes"
                             : p.kv_tokens > 0      ? "context <= " + std::to_string(p.kv_tokens)
                                                    : "no";
    out += "| " + p.model + " | " + weights + " | " + std::to_string(p.n_gpus) + " x " + memories[i] + " | " +
           std::to_string(p.tensor_parallel) + " | " + gib(p.weight_bytes) + " | " + gib(p.workspace_bytes) + " | " +
           (p.kv_cache_bytes > 0 ? gib(p.kv_cache_bytes) : "-" + gib(-p.kv_cache_bytes)) + " | " +
           std::to_string(p.kv_tokens) + " | " + std::to_string(p.n_sequences) + " | " + fits + " |\n";
  }
  return out;
}

}  // namespace

void add_plan_command(CLI::App& app, int& rc) {
  auto f = std::make_shared<PlanFlags>();
  std::string presets;
  for (const std::string& p : herd::memory_plan_presets()) presets += (presets.empty() ? "" : ", ") + p;
  CLI::App* cmd = app.add_subcommand(
      "plan",
      "Will a model fit on these GPUs? What each GPU (one tensor-parallel rank) holds: its share of the weights, "
      "a step's workspace (an estimate) and the KV cache, and how many full-context sequences fit, with the "
      "arithmetic. Nothing is loaded and no GPU is needed. Lists (--gpus 1,2,4 --gpu-memory 80GiB,141GiB --dtype "
      "bf16,fp8, -m repeated) print one table row per combination. Exit 0 whether or not it fits");
  cmd->footer(
      "Each rank holds 1/TP of q/k/v and gate/up (rows), of o and down (columns), of the embedding and LM head "
      "(vocabulary rows; a tied LM head is the embedding), the norms whole, and n_head_kv/TP KV heads (one each, "
      "replicated, when TP exceeds n_head_kv). The budget is --gpu-util x --gpu-memory; the KV cache gets the budget "
      "less the weights and the workspace, in blocks of --block-size tokens (one of them the null block), at "
      "2 x layers x KV heads x head_dim x element bytes per token. The workspace is an estimate: the f32 "
      "activations of one step of --max-batch-tokens tokens, its 16-bit GEMM inputs, logits for every token, "
      "the step's arrays, 40 MiB of kernel scratch and 1 GiB for the CUDA context, cuBLAS and NCCL (a guess). "
      "It fits when one sequence of --ctx tokens fits; otherwise the verdict says the longest context that does. "
      "A preset name wins over a directory of that name (write ./NAME for the directory). herd loads no FP8 "
      "weights yet, and its CUDA backend holds GGUF-quantized weights as BF16 (--dtype bf16 plans that). "
      "Output: the rows with their arithmetic and a verdict line; with lists, a Markdown table; --json: "
      "{\"plans\": [{\"model\", \"weight_dtype\", \"kv_dtype\", \"gpus\", \"tensor_parallel\", \"replicas\", "
      "\"kv_heads_per_rank\", \"context\", \"block_size\", \"max_batch_tokens\", \"gpu_memory\", \"gpu_util\", "
      "\"budget_bytes\", \"weight_bytes\", \"workspace_bytes\", \"kv_cache_bytes\", \"kv_bytes_per_token\", "
      "\"kv_blocks\", \"kv_tokens\", \"sequences\", \"fits\", \"verdict\", \"rows\": [{\"item\", \"value\", "
      "\"arithmetic\"}]}]} (sizes per GPU in bytes; kv_cache_bytes negative by the shortfall). docs/distributed.md "
      "has the table for Llama 3.1 on 80 GB and 141 GB cards.");
  cmd->add_option("-m,--model", f->models,
                  "A preset (" + presets + "; a preset's weights are BF16 as published), a model directory or a GGUF "
                  "file (only its config and tensor types are read); repeat for several")
      ->required();
  cmd->add_option_function<std::string>(
         "--gpus",
         [f](const std::string& text) {
           f->gpus.clear();
           for (const std::string& item : split_list(text, "--gpus")) f->gpus.push_back(parse_gpus(item));
         },
         "GPUs in all, or a list (1,2,4,8); each a whole number of --tp groups (default 1)");
  cmd->add_option_function<std::string>(
         "--gpu-memory",
         [f](const std::string& text) {
           for (const std::string& item : split_list(text, "--gpu-memory"))
             f->gpu_memory.emplace_back(item, parse_size(item, "--gpu-memory"));
         },
         "Memory of one GPU, or a list: 80GiB, 141GB, 80G. KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB and "
         "K/M/G/T powers of 1024 (an \"80 GB\" H100 reports about 79.6 GiB, a \"141 GB\" H200 about 140 GiB)")
      ->required();
  cmd->add_option("--tp,--tensor-parallel-size", f->options.tensor_parallel,
                  "Ranks one model is split over (default: --gpus); it must divide the attention heads, FFN width and "
                  "vocabulary and divide or be a multiple of the KV heads. More GPUs than --tp make replicas")
      ->check(int_range(1, 4096));
  cmd->add_option_function<std::string>(
         "--dtype",
         [f](const std::string& text) {
           f->dtypes = split_list(text, "--dtype");
           for (const std::string& d : f->dtypes)
             if (d != "stored" && d != "bf16" && d != "f16" && d != "f32" && d != "fp8")
               throw CLI::ValidationError("--dtype", "'" + d + "' is not stored, bf16, f16, f32 or fp8");
         },
         "Weight type, or a list: stored (as the files store them, GGUF blocks included; default), bf16, f16, f32, "
         "or fp8 (the layers' matrices FP8; embedding, LM head and norms BF16, as vLLM's FP8)");
  cmd->add_option("--kv-dtype", f->options.kv_dtype, "KV cache type: bf16 (herd's on CUDA), f16, f32 or fp8")
      ->capture_default_str()
      ->check(CLI::IsMember({"bf16", "f16", "f32", "fp8"}));
  cmd->add_option("-c,--ctx-size,--ctx", f->options.context,
                  "Tokens of one full sequence (default: the model's context, 131072 for Llama 3.1)")
      ->check(int_range(1, std::numeric_limits<int64_t>::max()));
  cmd->add_option("--block-size", f->options.block_size, "Tokens per KV block (a power of two)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](const std::string& text) -> std::string {
            int32_t v = 0;
            auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
            if (ec == std::errc() && p == text.data() + text.size() && v >= 1 && v <= 65536 && (v & (v - 1)) == 0)
              return "";
            return "'" + text + "' is not a power of two from 1 to 65536";
          },
          "INT", ""));
  cmd->add_option("--max-batch-tokens,--batch-tokens", f->options.max_batch_tokens,
                  "Token budget of one engine step (the engine's --batch-tokens); sizes the workspace")
      ->capture_default_str()
      ->check(int_range(1, 1 << 20));
  cmd->add_option("--gpu-util", f->options.gpu_util,
                  "The share of each GPU's memory to plan for (vLLM's gpu_memory_utilization)")
      ->capture_default_str()
      ->check(positive_real(1));
  cmd->add_flag("--json", f->json, "{\"plans\": [...]}: every number in bytes, the verdict and the arithmetic rows");
  cmd->callback([f, &rc] {
    std::vector<herd::MemoryPlan> plans;
    std::vector<std::string> dtypes, memories;
    for (const std::string& model : f->models)
      for (const std::string& dtype : f->dtypes)
        for (const auto& [memory, bytes] : f->gpu_memory)
          for (int gpus : f->gpus) {
            if (f->options.tensor_parallel > 0 && gpus % f->options.tensor_parallel != 0) {
              rc = report(herd::Status::invalid_input("plan: --gpus " + std::to_string(gpus) + " is not a multiple of --tp " +
                                                      std::to_string(f->options.tensor_parallel)));
              return;
            }
            herd::MemoryPlanOptions o = f->options;
            o.model = model;
            o.weight_dtype = dtype;
            o.gpu_memory = bytes;
            o.n_gpus = gpus;
            herd::MemoryPlan p;
            if ((rc = report(herd::plan_memory(o, &p)))) return;
            plans.push_back(std::move(p));
            dtypes.push_back(dtype);
            memories.push_back(memory);
          }
    if (f->json) std::cout << json_text(plans);
    else if (plans.size() == 1) std::cout << detail_text(plans[0], memories[0]);
    else std::cout << table_text(plans, dtypes, memories);
  });
}

}  // namespace herd_cli
