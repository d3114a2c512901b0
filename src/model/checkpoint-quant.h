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

#include <string>

#include "model/weights.h"

namespace herd {

// config_json: the checkpoint's config.json (its path, named in errors). Without a
// quantization_config there is nothing to do. Otherwise every setting herd does not support is one
// invalid-input error naming the field, and the quantized layers' tensors in by_name are replaced by
// their converted weights, owned by w. Tensors the scheme leaves unquantized stay as they are.
void convert_quantized_checkpoint(const std::string& config_json, TensorsByName& by_name, HostWeights& w);

}  // namespace herd
