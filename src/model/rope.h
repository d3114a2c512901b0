// RoPE inverse frequencies with Llama 3.1 "llama3" scaling, computed once per model.
#pragma once

#include <vector>

#include "model/config.h"

namespace herd {

// f32[head_dim / 2]: theta^(-2i/head_dim), scaled when c.rope_scaling is set (docs/llama31.md,
// "RoPE scaling"), or divided by c.rope_freq_factors when those are given.
std::vector<float> rope_inv_freq(const ModelConfig& c);

}  // namespace herd
