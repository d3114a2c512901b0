// Quantized Hugging Face checkpoints, as config.json's "quantization_config" describes them:
//  - compressed-tensors "float-quantized" FP8 (E4M3 weights, a scale per tensor or per output row,
//    an optional static input scale), as llm-compressor writes it;
//  - fbgemm FP8 (Meta's Llama 3.1 405B FP8 release: a scale per output row, dynamic activation
//    scales bounded by activation_scale_ub, modules_to_not_convert);
//  - AWQ, GEMM packing (4-bit, a scale and zero point per group of input columns);
//  - GPTQ (4-bit, symmetric or not, per group; act order through g_idx), in the original checkpoint
//    format (zero points stored minus one) or gptq_v2.
// Each quantized linear layer's tensors become one "<layer>.weight" of herd's FP8 or INT4 blocks
// (common/quant.h), which the model and the backends take like any other weight type. The values
// are exactly the formats' reference dequantization done in f32: FP8 e4m3(q) * scale, 4-bit
// (q - zero) * scale. Activations are not quantized: herd computes W8A16 and W4A16.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "model/weights.h"

namespace herd {

// How a checkpoint's layers are quantized.
struct CheckpointQuant {
  enum class Method { fp8, awq, gptq } method = Method::fp8;
  int64_t group = 0;            // AWQ, GPTQ: input columns per group; 0: the whole row (GPTQ's -1)
  bool zero_point = true;       // AWQ: qzeros stored (else the zero point is 8)
  bool zeros_minus_one = true;  // GPTQ's original checkpoint format stores zero points minus one (mod 16)
};

// config_json: the checkpoint's config.json (its path, named in errors); nullopt without a
// quantization_config. Every setting herd does not support is one invalid-input error naming the
// field. Read before the weights' files, whose tensors an unsupported scheme may store in types herd
// does not read.
std::optional<CheckpointQuant> read_checkpoint_quant(const std::string& config_json);

// Replaces the quantized layers' tensors in by_name by their converted weights, owned by w; tensors
// the scheme leaves unquantized stay as they are. `source` names the checkpoint in errors.
void convert_quantized_checkpoint(const CheckpointQuant& q, TensorsByName& by_name, HostWeights& w);

}  // namespace herd
