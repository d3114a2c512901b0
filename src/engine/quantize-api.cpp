// The public quantize API (include/herd/quantize.h) over model/quantize.h.
#include <algorithm>
#include <cctype>

#include "engine/guarded.h"
#include "herd/quantize.h"
#include "model/quantize.h"

namespace herd {

namespace {

struct Named {
  QuantType type;
  const char* name;
  QuantFormat format;
};
constexpr Named kTypes[] = {
    {QuantType::fp8, "fp8", QuantFormat::fp8},    {QuantType::awq, "awq", QuantFormat::awq},
    {QuantType::gptq, "gptq", QuantFormat::gptq}, {QuantType::q8_0, "q8_0", QuantFormat::q8_0},
    {QuantType::q4_0, "q4_0", QuantFormat::q4_0}, {QuantType::q4_1, "q4_1", QuantFormat::q4_1},
    {QuantType::q4_k_m, "q4_k_m", QuantFormat::q4_k_m}, {QuantType::q5_k_m, "q5_k_m", QuantFormat::q5_k_m},
    {QuantType::q6_k, "q6_k", QuantFormat::q6_k},
};

const Named& named(QuantType t) {
  for (const Named& n : kTypes)
    if (n.type == t) return n;
  return kTypes[0];
}

}  // namespace

bool quant_type_from_name(std::string_view name, QuantType* out) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  for (const Named& n : kTypes)
    if (lower == n.name) {
      *out = n.type;
      return true;
    }
  return false;
}

const char* quant_type_name(QuantType t) { return named(t).name; }

std::vector<std::string> quant_type_names() {
  std::vector<std::string> names;
  for (const Named& n : kTypes) names.emplace_back(n.name);
  return names;
}

bool quant_type_is_gguf(QuantType t) {
  return t != QuantType::fp8 && t != QuantType::awq && t != QuantType::gptq;
}

Status quantize_model(const std::string& in_dir, const std::string& out, const QuantizeOptions& options,
                      const std::function<void(const QuantizeProgress&)>& on_progress) {
  return guarded([&] {
    QuantizeSettings s;
    s.format = named(options.type).format;
    s.group_size = options.group_size;
    s.n_threads = options.n_threads;
    quantize_model_dir(in_dir, out, s, [&](const QuantizeStep& step) {
      if (!on_progress) return;
      QuantizeProgress p;
      p.done_bytes = step.done_bytes;
      p.total_bytes = step.total_bytes;
      p.done_tensors = step.done_tensors;
      p.total_tensors = step.total_tensors;
      p.tensor = step.tensor;
      on_progress(p);
    });
  });
}

}  // namespace herd
