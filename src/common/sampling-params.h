// What one request asks of the sampler chain (sampling/sampler.h defines the chain and validates
// these); here so that a backend that samples on its device (backend/backend.h) can take them too.
#pragma once

#include <cstdint>

namespace herd {

// Defaults are the identity for every transform and greedy decoding (temperature 0).
struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (argmax after penalties); else logits / temperature
  int32_t top_k = 0;         // keep the k most likely tokens; 0: off
  float top_p = 1.0f;        // keep the smallest set with cumulative probability >= top_p
  float min_p = 0.0f;        // drop tokens with probability < min_p * the largest one; 0: off
  float repetition_penalty = 1.0f;  // CTRL / HF, over prompt and output; 1: off
  float frequency_penalty = 0.0f;   // OpenAI, per occurrence in the output
  float presence_penalty = 0.0f;    // OpenAI, once per token present in the output
  uint64_t seed = 0;                // the request's generator; the engine picks one when unset

  bool greedy() const { return temperature == 0.0f; }
  bool penalised() const {
    return repetition_penalty != 1.0f || frequency_penalty != 0.0f || presence_penalty != 0.0f;
  }
};

}  // namespace herd
