// Sampling on the device: the whole chain of sampling/sampler.h (penalties, temperature, top-k,
// top-p, min-p, the draw) and the requested logprobs, one block per drawn token (or per scored
// prompt token), so that a step copies back a few bytes per row instead of a vocabulary of logits.
#pragma once

#include "kernels/common.cuh"

namespace herd::kernels {

constexpr int kSampleMaxTop = 20;         // logprobs alternatives, as the engine bounds them
constexpr int kSampleMaxVocab = 1 << 20;  // keeps the fixed-point probability sums within 64 bits

// One token to pick. Several may read the same logits row (a request's samples branching off it).
struct SampleRow {
  int32_t row;                // the logits row
  float temperature;          // 0: greedy, the argmax after penalties
  int32_t top_k;              // 0: off
  float top_p, min_p;         // 1, 0: off
  float repetition_penalty;   // 1: off; applies to every token of penalty_[begin, end)
  float frequency_penalty;    // times the token's count in penalty_counts
  float presence_penalty;     // once for a count > 0
  int32_t penalty_begin, penalty_end;
  int32_t n_top;              // 0: no logprobs; else the picked token's and n_top alternatives
  int32_t score_token;        // >= 0: pick nothing, give this token's logprob (a prompt's score)
  double u;                   // the draw, uniform in [0, 1); unused when greedy
};

// What comes back for one SampleRow.
struct SampleOut {
  int32_t id;                      // -1: the row holds a NaN or an infinity
  float logprob;                   // of id under the raw logits (when n_top > 0 or scoring)
  int32_t top_id[kSampleMaxTop];   // [n_top] descending, ties by lower id
  float top_logprob[kSampleMaxTop];
};

// Picks one token per SampleRow. All pointers are device memory.
//   logits:        f32 [n_logits_rows, n_vocab], row stride `stride`; read only
//   penalty_ids:   distinct token ids of each row's prompt and output (SampleRow's range)
//   penalty_counts: each id's count in the output alone (frequency and presence penalties)
//   work:          f32 [n_rows, n_vocab] scratch (the penalised row, then its probabilities)
cudaError_t sample(const float* logits, int64_t stride, int n_vocab, const SampleRow* rows, int n_rows,
                   const int32_t* penalty_ids, const int32_t* penalty_counts, float* work, SampleOut* out,
                   cudaStream_t stream);

}  // namespace herd::kernels
