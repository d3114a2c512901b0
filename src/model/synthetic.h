// Random-weight models written as real safetensors directories, for tests and benchmarks.
#pragma once

#include <cstdint>
#include <string>

#include "model/config.h"

namespace herd {

// Writes out_dir/config.json and out_dir/model.safetensors. Weights ~ N(0, 0.02^2) like
// transformers' initialiser; norm weights ~ 1 + N(0, 0.1^2) so that they matter.
void write_synthetic_model(const ModelConfig& c, DType dtype, uint64_t seed, const std::string& out_dir);

}  // namespace herd
