#include "model-summary.h"

#include <algorithm>
#include <cstdio>

#include "commands.h"

namespace herd_cli {
namespace {

using nlohmann::ordered_json;

std::string format_name(const herd::Tokenizer* tokenizer) {
  if (!tokenizer) return "none (the model has no tokenizer)";
  switch (herd::prompt_format(*tokenizer)) {
    case herd::PromptFormat::llama3: return "Llama 3.1 (with tool calling)";
    case herd::PromptFormat::chatml: return "ChatML (no tool calling)";
    case herd::PromptFormat::unsupported: break;
  }
  return "none (a chat template herd does not know)";
}

// 134515008 -> "134.5M"
std::string approx(int64_t n) {
  char buf[32];
  if (n >= 1000000000) std::snprintf(buf, sizeof buf, "%.2fB", double(n) / 1e9);
  else if (n >= 1000000) std::snprintf(buf, sizeof buf, "%.1fM", double(n) / 1e6);
  else if (n >= 1000) std::snprintf(buf, sizeof buf, "%.1fK", double(n) / 1e3);
  else std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

ordered_json model_summary(const herd::Engine& engine, const herd::Tokenizer* tokenizer, const ChatSettings& chat) {
  const herd::ModelInfo& i = engine.info();
  const herd::EngineStats st = engine.stats();
  ordered_json model_sampling = nullptr;
  if (i.default_do_sample || i.default_temperature || i.default_top_p || i.default_top_k) {
    model_sampling = ordered_json::object();
    if (i.default_do_sample) model_sampling["do_sample"] = *i.default_do_sample;
    if (i.default_temperature) model_sampling["temperature"] = json_float(*i.default_temperature);
    if (i.default_top_p) model_sampling["top_p"] = json_float(*i.default_top_p);
    if (i.default_top_k) model_sampling["top_k"] = *i.default_top_k;
  }
  const herd::SamplingOptions& s = chat.sampling;
  return {
      {"name", i.name},
      {"architecture", i.architecture},
      {"parameters", i.n_params},
      {"dtype", i.dtype},
      {"weight_types", i.weight_types},
      {"context_length", i.n_ctx_train},
      // What a conversation can use: the model's context, or less when the KV cache holds less
      // (the same number `herd chat`'s /stats shows).
      {"context", std::min<int64_t>(i.max_context, st.kv_capacity_tokens)},
      {"kv_capacity_tokens", st.kv_capacity_tokens},
      {"kv_bytes_per_token", st.kv_bytes_per_token},
      {"kv_dtype", i.kv_dtype},
      {"block_size", st.block_size},
      {"chat_format", format_name(tokenizer)},
      {"device", i.device},
      {"threads", i.n_threads},
      {"tensor_parallel", i.tensor_parallel},
      {"model_sampling", model_sampling},
      {"chat_sampling",
       {{"temperature", json_float(s.temperature.value_or(0.0f))},
        {"top_p", json_float(s.top_p.value_or(1.0f))},
        {"top_k", s.top_k.value_or(0)},
        {"repetition_penalty", json_float(s.repetition_penalty)},
        {"max_tokens", chat.max_tokens},
        {"source", chat.source}}},
  };
}

std::string summary_text(const ordered_json& j) {
  const ordered_json& c = j["chat_sampling"];
  std::string sampling = c["temperature"].get<float>() == 0.0f ? "greedy" : "temperature " + number(c["temperature"].get<float>());
  if (c["temperature"].get<float>() != 0.0f) {
    if (c["top_p"].get<float>() < 1.0f) sampling += ", top-p " + number(c["top_p"].get<float>());
    if (c["top_k"].get<int>() > 0) sampling += ", top-k " + std::to_string(c["top_k"].get<int>());
  }
  if (c["repetition_penalty"].get<float>() != 1.0f) sampling += ", repetition penalty " + number(c["repetition_penalty"].get<float>());
  const int cap = c["max_tokens"].get<int>();
  const auto threads = j["threads"].get<int>();
  std::string out;
  out += "model:       " + j["name"].get<std::string>() + " (" + j["architecture"].get<std::string>() + ", " +
         approx(j["parameters"].get<int64_t>()) + " parameters)\n";
  out += "weights:     " + j["weight_types"].get<std::string>() + "\n";
  out += "context:     " + std::to_string(j["context"].get<int64_t>()) + " tokens (the model's is " +
         std::to_string(j["context_length"].get<int64_t>()) + ")\n";
  out += "KV cache:    " + std::to_string(j["kv_capacity_tokens"].get<int64_t>()) + " tokens (" +
         j["kv_dtype"].get<std::string>() + ", " + std::to_string(j["block_size"].get<int>()) + " per block, " +
         std::to_string(j["kv_bytes_per_token"].get<int64_t>()) + " bytes each)\n";
  out += "chat format: " + j["chat_format"].get<std::string>() + "\n";
  const auto ranks = j["tensor_parallel"].get<int>();
  out += "device:      " + j["device"].get<std::string>() + (threads > 0 ? ", " + std::to_string(threads) + " threads" : "") +
         (ranks > 1 ? ", split over " + std::to_string(ranks) + " tensor-parallel ranks" : "") + "\n";
  out += "sampling:    " + sampling + " (" + c["source"].get<std::string>() + ")\n";
  out += "replies:     " + (cap > 0 ? "up to " + std::to_string(cap) + " tokens" : std::string("until the context is full")) +
         " (-n sets it)\n";
  return out;
}

}  // namespace herd_cli
