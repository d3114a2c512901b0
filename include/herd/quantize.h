// Writing quantized checkpoints from a Hugging Face model directory of BF16, F16 or F32 safetensors
// (docs/quantized.md, "Writing quantized checkpoints"): the formats herd itself loads, laid out as
// the tools that publish them write them, so that other engines load them too.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "herd/export.h"
#include "herd/status.h"

namespace herd {

enum class QuantType {
  fp8,   // compressed-tensors "float-quantized": E4M3 weights, one scale per output row (FP8_DYNAMIC)
  awq,   // AutoAWQ GEMM: 4 bits, asymmetric, a scale and zero point per group of input columns
  gptq,  // GPTQModel ("gptq" checkpoint format): 4 bits, symmetric, a scale per group
  q8_0,  // GGUF files as llama.cpp's convert_hf_to_gguf.py + llama-quantize write them
  q4_0,
  q4_1,
  q4_k_m,  // llama-quantize's Q4_K_M mix: Q4_K, with Q6_K for some attn_v and ffn_down and the LM head
           // (and Q5_K for the other attn_v of an 80-layer GQA model, llama.cpp's 70B)
  q5_k_m,  // llama-quantize's Q5_K_M mix: Q5_K, with Q6_K for some attn_v and ffn_down and the LM head
  q6_k,
};

// "fp8", "awq", "gptq", "q8_0", "q4_0", "q4_1", "q4_k_m", "q5_k_m", "q6_k" (case-insensitive); false
// otherwise.
HERD_API bool quant_type_from_name(std::string_view name, QuantType* out);
HERD_API const char* quant_type_name(QuantType t);
// Every name quant_type_from_name takes, in the enum's order.
HERD_API std::vector<std::string> quant_type_names();
// Whether the output is one GGUF file (q8_0, q4_0, q4_1, q4_k_m, q5_k_m, q6_k) rather than a model
// directory.
HERD_API bool quant_type_is_gguf(QuantType t);

struct QuantizeOptions {
  QuantType type = QuantType::fp8;
  // AWQ and GPTQ: input columns per group, a multiple of 32 that divides every layer's input width.
  int64_t group_size = 128;
  int n_threads = 0;  // 0: one per hardware thread
};

// What quantize_model has done so far: bytes of input weights read (of the total), and the tensor it
// wrote last. Called once when the input has passed every check and writing begins (nothing done,
// tensor empty), then after each input tensor, from the calling thread.
struct QuantizeProgress {
  int64_t done_bytes = 0;
  int64_t total_bytes = 0;
  int64_t done_tensors = 0;
  int64_t total_tensors = 0;
  std::string tensor;  // the name of the tensor just written (the output's name)
};

// Reads the model directory in_dir (config.json, *.safetensors in BF16, F16 or F32; no
// quantization_config) one tensor at a time from its memory-mapped files and writes out: a new
// directory (fp8, awq, gptq: config.json with the format's quantization_config, model.safetensors,
// and in_dir's tokenizer and generation files copied unchanged), or a new GGUF file. out must not
// exist: an existing path is invalid_input and is left as it is. On failure nothing is left at out.
HERD_API Status quantize_model(const std::string& in_dir, const std::string& out, const QuantizeOptions& options,
                               const std::function<void(const QuantizeProgress&)>& on_progress = {});

}  // namespace herd
