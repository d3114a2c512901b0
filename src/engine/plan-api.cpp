// The public memory planner (include/herd/memory-plan.h) over engine/memory-plan.h: a preset or a
// model's files (config and tensor types only; nothing is uploaded) and the options as text.
#include <optional>
#include <set>

#include "engine/guarded.h"
#include "engine/memory-plan.h"
#include "model/model-dir.h"
#include "model/shard.h"

namespace herd {

Status plan_memory(const MemoryPlanOptions& o, MemoryPlan* out) {
  return guarded([&] {
    PlanInput in;
    in.model = o.model;
    std::optional<ModelFiles> files;
    if (const auto preset = llama_preset(o.model)) in.config = *preset;
    else in.config = (files = load_model_files(o.model))->config;
    const ModelConfig& c = in.config;
    in.n_gpus = o.n_gpus;
    in.tp = o.tensor_parallel > 0 ? o.tensor_parallel : o.n_gpus;

    bool quantized = false;
    if (o.weight_dtype == "stored") {
      if (files) {
        const HostWeights& w = files->weights;
        // The column splits of o and down must fall on whole blocks, as the loader requires.
        if (!w.layers.empty()) check_tensor_parallel(c, in.tp, w.layers[0].wo.dtype, w.layers[0].w_down.dtype);
        in.weights = weight_types(w);
        std::set<std::string> names;
        for (const StoredType* t : {&in.weights.tok_embd, &in.weights.output}) names.insert(t->name);
        for (const WeightTypes::Layer& l : in.weights.layers)
          for (const StoredType* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
            names.insert(t->name);
            quantized |= t->elems > 1;
          }
        std::string list;
        for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
        in.weight_dtype = "as stored: " + list;
      } else {
        // Meta publishes the presets' weights in BF16.
        const StoredType bf16 = stored_type(DType::bf16);
        in.weights = uniform_weight_types(c.n_layer, bf16, bf16, bf16);
        in.weight_dtype = "BF16";
      }
    } else {
      const auto t = stored_type_named(o.weight_dtype);
      HERD_REQUIRE(t, "weight_dtype \"", o.weight_dtype, "\": expected stored, bf16, f16, f32 or fp8");
      if (t->name == "FP8") {
        // As vLLM quantizes a model to FP8: the layers' matrices; the embedding, LM head and norms stay BF16.
        const StoredType bf16 = stored_type(DType::bf16);
        in.weights = uniform_weight_types(c.n_layer, *t, bf16, bf16);
        in.weight_dtype = "FP8 (embedding, LM head, norms BF16)";
      } else {
        in.weights = uniform_weight_types(c.n_layer, *t, *t, *t);
        in.weight_dtype = t->name;
      }
    }
    const auto kv = stored_type_named(o.kv_dtype);
    HERD_REQUIRE(kv, "kv_dtype \"", o.kv_dtype, "\": expected bf16, f16, f32 or fp8");
    in.kv_type = *kv;
    in.gpu_memory = o.gpu_memory;
    in.gpu_util = o.gpu_util;
    in.context = o.context > 0 ? o.context : c.n_ctx_train;
    in.block_size = o.block_size;
    in.max_batch_tokens = o.max_batch_tokens;
    *out = plan_rank_memory(in);
    if (quantized)
      out->rows.push_back({"note", "", "herd's CUDA backend holds GGML-quantized weights as BF16 today: plan with "
                                       "weight type bf16 for that footprint"});
  });
}

std::vector<std::string> memory_plan_presets() { return llama_preset_names(); }

}  // namespace herd
