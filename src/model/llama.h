// The Llama 3.1 forward pass over the Backend interface. One readable function; the model
// never knows which backend runs it or which file format its weights came from.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "dist/communicator.h"
#include "model/batch.h"
#include "model/config.h"
#include "model/decode-shape.h"
#include "model/runner.h"
#include "model/shard.h"
#include "model/weights.h"

namespace herd {

class LlamaModel final : public ModelRunner {
 public:
  // Uploads the weights once: all of them, or with a communicator of several ranks, this rank's
  // shard of them (model/shard.h); every rank then runs the same calls in the same order, and the
  // collectives of the forward pass join the shards' partial results.
  LlamaModel(const ModelConfig& c, const HostWeights& w, Backend& backend, Communicator* comm = nullptr);
  // The paged KV cache, sized once the weights are in place: per layer, K and V of
  // [n_blocks, this rank's n_head_kv, block_size, head_dim] in the backend's kv_dtype().
  void allocate_kv(int32_t n_blocks, int32_t block_size) override;

  // Copies K and V of whole blocks in every layer (copy on write of forked sequences).
  void copy_blocks(const std::vector<std::pair<int32_t, int32_t>>& from_to) override;

  // Runs one batch; K/V of every token are written at its slot. Returns f32 [n_rows, n_vocab],
  // empty when the batch asks for no rows (prefill chunks that end before their prompts do).
  std::vector<float> forward(const Batch& batch) override;
  // The same, but returns only the argmax of each logits row (greedy decoding).
  std::vector<int32_t> forward_greedy(const Batch& batch) override;
  bool samples_on_device() const override { return be_.samples_on_device(); }
  std::vector<SampledToken> forward_sampled(const Batch& batch, std::span<const SampleSpec> specs) override;
  // This rank's share of the decode bytes times the ranks (the shards are equal in size).
  int64_t decode_weight_bytes() const override;
  // Whether decode steps are recorded and replayed (false after a recording failed), and the ops of
  // each shape's recording: a step's kernel launches on CUDA.
  bool records_decode() const { return record_decode_; }
  std::map<DecodeShape, int64_t> recorded_ops() const;

 private:
  struct Layer {
    Tensor attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
    Tensor k_cache, v_cache;  // [n_blocks, n_head_kv, block_size, head_dim]
    KvScales kv_scales;       // used by an FP8 cache
  };
  // Activations for up to `cap` tokens, reused across steps; head and FFN counts are this rank's.
  struct Scratch {
    int64_t cap = 0;
    Tensor x, xn;     // [n_tokens, n_embd]
    Tensor q, attn;   // [n_tokens, n_head * head_dim]
    Tensor k, v;      // [n_tokens, n_head_kv * head_dim]
    Tensor gate, up;  // [n_tokens, n_ff]
  };
  // Uploads this rank's part of a weight; column slices are copied into owned_ first.
  Tensor upload_rows(const TensorView& t, int64_t first, int64_t count);
  Tensor upload_cols(const TensorView& t, int64_t first, int64_t count);
  // Sums a row-parallel product's partial results over the ranks (nothing on one rank).
  void all_reduce(Tensor& x);

  // A decode shape's recording (Backend::end_capture) and what it reads and writes: its own input
  // buffer and the logits it leaves. Stale when the backend's or the model's buffers have moved since.
  struct Recorded {
    bool warm = false;  // one step of this shape has run as it is
    Tensor ints, logits;
    std::unique_ptr<StepGraph> graph;
    uint64_t backend_epoch = 0, model_epoch = 0;
    uint64_t last_used = 0;  // the decode step that last ran this shape
  };
  static constexpr size_t kMaxRecordings = 48;

  // Runs the layers and the LM head; returns the device logits [n_rows, n_vocab], or more rows for a
  // padded decode step (the batch's first).
  Tensor run(const Batch& batch);
  // A decode step padded to its shape and replayed from the shape's recording, made on its second step.
  Tensor run_recorded(const Batch& batch, const DecodeShape& shape);
  // The step's int32 arrays, as compute() reads them from the device.
  std::vector<int32_t> step_ints(const Batch& batch) const;
  // The forward pass itself: device ops only, nothing read back (so that it can be recorded).
  Tensor compute(const Batch& batch, const Tensor& ints);
  void ensure_scratch(int64_t n_tokens);
  // A reusable buffer of at least n elements, viewed as `shape`; growing it bumps model_epoch_.
  Tensor reuse(Tensor& buf, DType dtype, Shape shape);

  ModelConfig c_;
  Backend& be_;
  Communicator* comm_;  // null: the whole model on one rank
  ShardDims d_;         // this rank's heads, FFN columns and vocabulary rows
  std::vector<std::vector<uint8_t>> owned_;  // column slices the CPU backend aliases (a GPU copies them)
  int32_t block_size_ = 0;
  Tensor tok_embd_, output_norm_, output_, inv_freq_;
  std::vector<Layer> layers_;
  Scratch s_;
  Tensor ints_, picked_, picked_norm_, logits_, argmax_;
  Tensor logits_local_, logits_gathered_;  // with several ranks: this rank's vocabulary slice, and all of them
  // Decode steps recorded and replayed (CUDA graphs) on one rank, when the backend records; off for
  // good after a recording fails.
  bool record_decode_ = false;
  std::map<DecodeShape, Recorded> recorded_;
  uint64_t n_decode_steps_ = 0;  // padded decode steps run, the clock of Recorded::last_used
  uint64_t model_epoch_ = 0;     // bumped whenever a buffer the recordings use moves
};

}  // namespace herd
