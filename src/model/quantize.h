// herd quantize: a Hugging Face model directory of BF16, F16 or F32 safetensors written again as a
// quantized checkpoint (compressed-tensors FP8, AutoAWQ, GPTQModel) or as a llama.cpp GGUF file,
// one tensor at a time from the memory-mapped input (docs/quantized.md, "Writing quantized
// checkpoints").
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/tensor.h"
#include "model/model-dir.h"

namespace herd {

class GgufWriter;
class ThreadPool;

enum class QuantFormat { fp8, awq, gptq, q8_0, q4_0, q4_1, q4_k_m, q5_k_m, q6_k };

struct QuantizeSettings {
  QuantFormat format = QuantFormat::fp8;
  int64_t group_size = 128;  // AWQ, GPTQ
  int n_threads = 0;
};

struct QuantizeStep {
  int64_t done_bytes = 0, total_bytes = 0;      // input weight bytes
  int64_t done_tensors = 0, total_tensors = 0;  // input tensors
  std::string tensor;                           // the output tensor just written
};
using QuantizeCallback = std::function<void(const QuantizeStep&)>;

// Checks in_dir and out (which must not exist), writes the output beside out under a temporary
// name and renames it into place when complete; on any error nothing is left at out. Bad input
// (a quantized, GGUF or Meta checkpoint, a weight that is not BF16/F16/F32, a shape the format
// cannot hold, an existing out) is an invalid-input Error naming the file and the reason.
void quantize_model_dir(const std::string& in_dir, const std::string& out, const QuantizeSettings& s,
                        const QuantizeCallback& on_step);

// --- What the writers share (quantize.cpp)

// One weight of the input with its Hugging Face name; `linear` marks the decoder's projections
// (q, k, v, o, gate, up, down), the only ones the formats quantize (GGUF also the embedding and
// LM head).
struct SourceTensor {
  std::string name;  // "model.layers.3.self_attn.q_proj.weight"
  TensorView view;
  int64_t layer = -1;
  std::string kind;  // "q_proj", ..., "input_layernorm", "embed_tokens", "norm", "lm_head"
  bool linear = false;
};

struct QuantizeInput {
  std::string dir;
  ModelFiles files;            // views into the mapped safetensors
  std::string config_text;     // config.json as read
  std::vector<SourceTensor> tensors;  // embedding, layers in order, final norm, LM head
};

// Counts input tensors and bytes as the writers finish them, and tells the caller: once when the
// writer has checked everything it can before writing (start), then after each input tensor.
class QuantizeTracker {
 public:
  QuantizeTracker(const QuantizeInput& in, const QuantizeCallback& cb);
  void start();
  void done(const SourceTensor& t, const std::string& written_as);

 private:
  const QuantizeCallback& cb_;
  QuantizeStep step_;
};

// Row r of a plain 2-D (or 1-D: r = 0) tensor as f32. Safe on pool threads: a non-finite value is
// recorded in `bad` (the first one by position wins) instead of thrown.
class NonFinite {
 public:
  void note(int64_t index);  // row * n_cols + col
  // An invalid-input Error naming the tensor, row and column when a value was noted.
  void check(const SourceTensor& t) const;

 private:
  std::atomic<int64_t> first_{INT64_MAX};
};
void read_row_f32(const SourceTensor& t, int64_t r, float* dst, NonFinite& bad);

void write_quantized_checkpoint(const QuantizeInput& in, const std::string& out_dir, const QuantizeSettings& s,
                                ThreadPool& pool, QuantizeTracker& tracker);
// The tokenizer.* keys from in.dir's tokenizer.json and tokenizer_config.json (quantize-gguf-vocab.cpp).
void add_gguf_vocab(GgufWriter& w, const QuantizeInput& in, int64_t n_vocab);
void write_quantized_gguf(const QuantizeInput& in, const std::string& out_file, const QuantizeSettings& s,
                          ThreadPool& pool, QuantizeTracker& tracker);

}  // namespace herd
