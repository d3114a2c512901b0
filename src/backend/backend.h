// The backend interface: memory plus the ~dozen ops one Llama forward pass needs.
// src/model calls only this; the CPU backend (reference) and the CUDA backend implement it.
// Activations are f32; weights keep their stored dtype; all accumulation is f32.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/check.h"
#include "common/sampling-params.h"
#include "common/tensor.h"

namespace herd {

// A tensor whose memory a backend owns (host memory on the CPU, device memory on CUDA).
struct Tensor {
  DType dtype = DType::f32;
  Shape shape;
  std::shared_ptr<void> storage;  // keeps the memory alive; empty for views of mapped files
  // A weight's column order (TensorView::col_perm), in host memory that outlives the tensor; null
  // for all but act-ordered GPTQ weights on the CPU (CUDA restores the input order at upload).
  const int32_t* col_perm = nullptr;

  void* data() const { return storage.get(); }
  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return dtype_nbytes(dtype, numel()); }
  int64_t dim(int i) const { return shape[size_t(i < 0 ? int(shape.size()) + i : i)]; }
};

// The same memory seen with another shape (at most as many elements): how the model
// reuses scratch buffers sized for the largest batch.
inline Tensor view_as(const Tensor& t, Shape shape) {
  Tensor v{t.dtype, std::move(shape), t.storage, t.col_perm};
  return v;
}

// One of several matrix products of the same input: out = x * w^T.
struct MatmulOut {
  const Tensor& w;
  Tensor& out;
};

// A layer's FP8 KV cache scales: the cache holds k / k and v / v as E4M3 codes.
struct KvScales {
  float k = 1.f, v = 1.f;
};

// One token for a backend that samples on its device to pick: the chain of sampling/sampler.h over
// logits row `row`, drawing with u from the request's generator (Sampler::draw).
struct SampleSpec {
  int32_t row = 0;
  SamplingParams params;  // validated; the seed is not read (u is the draw)
  double u = 0.0;         // uniform in [0, 1); unused when greedy
  int32_t n_top = 0;      // 0: no logprobs; else the token's and n_top alternatives, at most 20
  // >= 0: pick nothing; the logprob of this token under the raw row (a prompt token's score).
  int32_t score_token = -1;
  // With penalties: each distinct id of the prompt and output, and its count in the output
  // (sampling/penalty-tokens.h).
  std::span<const int32_t> penalty_ids, penalty_counts;
};

struct SampledToken {
  int32_t id = -1;   // -1: the row holds a NaN or an infinity
  float logprob = 0;  // of id under the raw logits, when n_top > 0 or scoring
  std::vector<std::pair<int32_t, float>> top;  // [n_top] (id, logprob), descending, ties by lower id
};

// A recording of a step's ops, replayed as one unit with the inputs now in the buffers it read
// (CUDA graphs): fixed shapes, fixed device addresses.
class StepGraph {
 public:
  virtual ~StepGraph() = default;
  virtual void replay() = 0;
  virtual int64_t n_ops() const = 0;  // ops recorded (kernel launches, copies, ...)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Bytes the backend could still allocate (RAM or device memory), 0 when it cannot tell: sizes
  // the default KV budget.
  virtual size_t free_memory() const { return 0; }

  // --- memory ---
  // A weight: the CPU backend aliases host.data (a mapped file, which must outlive the tensor);
  // others copy it to the device once.
  virtual Tensor upload_weight(const TensorView& host) = 0;
  virtual Tensor alloc(DType dtype, Shape shape) = 0;
  virtual void write(Tensor& dst, const void* src, size_t nbytes) = 0;  // host -> backend
  virtual void read(const Tensor& src, void* dst, size_t nbytes) = 0;   // backend -> host
  // Copies outermost slices within one tensor: t[to] = t[from] for each pair (copy on write of
  // KV blocks, [n_blocks, ...]). Pairs are applied in order; no slice is both a source and a target.
  virtual void copy_blocks(Tensor& t, const std::vector<std::pair<int32_t, int32_t>>& from_to) = 0;

  // --- recording ---
  // Whether the backend records steps (CUDA, unless HERD_CUDA_GRAPHS=off).
  virtual bool can_capture() const { return false; }
  // Between begin_capture() (false: it could not start) and end_capture(), ops are recorded instead
  // of run; end_capture() returns the recording, or null when recording failed (nothing ran: the
  // caller runs the ops itself). No alloc, write or read between. An op that throws while
  // recording leaves the backend recording: call end_capture() to stop.
  virtual bool begin_capture() { return false; }
  virtual std::unique_ptr<StepGraph> end_capture() { return nullptr; }
  // Changes whenever memory the backend keeps behind its ops (scratch) moves: recordings made
  // before then read freed memory and must be made again.
  virtual uint64_t memory_epoch() const { return 0; }

  // --- ops ---
  // out[n, d] = table[ids[i], :]; ids: i32[n]; table: [n_rows, d] of any stored dtype. It is the
  // embedding lookup, and also picks the rows of f32 activations whose logits are wanted. An id of -1
  // gives a row of zeros: a token whose embedding row another tensor-parallel rank holds.
  virtual void embed(const Tensor& table, const Tensor& ids, Tensor& out) = 0;
  // out[n, d] = x / rms(x) * w; x: [n, d] f32; w: [d]
  virtual void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) = 0;
  // The residual add and the next norm in one pass: x += y, then out = rms_norm(x) * w.
  // x, y, out: [n, d] f32; w: [d]. out may be y's memory (not x's).
  virtual void add_rms_norm(Tensor& x, const Tensor& y, const Tensor& w, float eps, Tensor& out) = 0;
  // out[n, m] = x[n, k] * w[m, k]^T
  virtual void matmul(const Tensor& x, const Tensor& w, Tensor& out) = 0;
  // Every part's out[n, m_i] = x[n, k] * w_i[m_i, k]^T: the products that share an input (q, k
  // and v; gate and up), which a backend may run as one (one pass over x, one parallel loop).
  virtual void matmul_shared(const Tensor& x, std::span<const MatmulOut> parts) {
    for (const MatmulOut& p : parts) matmul(x, p.w, p.out);
  }
  // The paged KV cache of one layer: K and V each [n_blocks, n_head_kv, block_size, head_dim].
  // The backend picks the element type (f32 on the CPU's exact path, f16 on its fast one, bf16 on
  // CUDA), or f8_e4m3 on any when asked (BackendOptions::kv_fp8): E4M3 codes of k / scales.k and
  // v / scales.v, rounded to nearest even and saturated at +-448.
  virtual DType kv_dtype() const = 0;
  // What comes between the qkv projections and attention, in one op: RoPE on q and k in place
  // (the half-split (rotate_half) layout, angle = float(pos) * inv_freq[i] rounded to f32, inv_freq
  // already llama3-scaled), then token i's rotated k and its v are written at slot
  // slot_mapping[i] = block * block_size + offset of the caches; a slot of -1 is skipped (k is
  // still rotated).
  //   q: [n_tokens, n_head, head_dim] f32; k, v: [n_tokens, n_head_kv, head_dim] f32
  //   pos, slot_mapping: i32[n_tokens]; inv_freq: f32[head_dim / 2]
  // scales: the layer's, used by an f8_e4m3 cache only.
  virtual void rope_kv_write(Tensor& q, Tensor& k, const Tensor& v, const Tensor& pos, const Tensor& inv_freq,
                             const Tensor& slot_mapping, Tensor& k_cache, Tensor& v_cache, KvScales scales = {}) = 0;
  // Causal GQA attention over the paged cache for a batch of sequences, each contributing a run of
  // query tokens (a prefill chunk, or one decode token):
  //   q:               [n_tokens, n_head, head_dim], sequences back to back
  //   query_start_loc: i32[n_seqs + 1]; sequence s owns tokens [qsl[s], qsl[s + 1])
  //   seq_lens:        i32[n_seqs]; keys of s after this step's rope_kv_write (its last q_len tokens
  //                    are the queries, so query j of s sits at position seq_lens[s] - q_len + j
  //                    and sees keys [0, that position])
  //   block_table:     i32[n_seqs, max_blocks]; logical block b of s is physical block bt[s][b]
  //   out:             [n_tokens, n_head * head_dim]
  // An f8_e4m3 cache holds codes c: a score is (q . c_k) * scales.k / sqrt(head_dim), and the output
  // scales.v * sum(p * c_v).
  virtual void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                         const Tensor& query_start_loc, const Tensor& seq_lens, const Tensor& block_table,
                         Tensor& out, KvScales scales = {}) = 0;
  // out[n, f] = silu(gate) * up
  virtual void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  // The feed-forward block's first half: gate = silu(x * w_gate^T) * (x * w_up^T).
  //   x: [n, d] f32; w_gate, w_up: [f, d]; gate, up: [n, f] f32, up free for the backend to use.
  // A backend may compute it in one pass (CUDA's decode GEMV); by default two products and silu_mul.
  virtual void swiglu(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, Tensor& gate, Tensor& up) {
    const MatmulOut parts[] = {{w_gate, gate}, {w_up, up}};
    matmul_shared(x, parts);
    silu_mul(gate, up, gate);
  }
  // out[r] = the first index of the largest value of row r, or -1 when the row holds a NaN or an
  // infinity (broken weights or an overflow: reported, never turned into a token).
  // x: [n_rows, n] f32; out: i32[n_rows]. Greedy decoding copies one id per sequence back instead of
  // a vocabulary row.
  virtual void argmax(const Tensor& x, Tensor& out) = 0;
  // Whether sample() picks tokens here: on a GPU it saves copying logits rows to the host. The
  // CPU's rows are in host memory already; the host's Sampler picks from them.
  virtual bool samples_on_device() const { return false; }
  // One token per spec from logits [n_rows, n_vocab] f32; only these come back to the host.
  virtual std::vector<SampledToken> sample(const Tensor& logits, std::span<const SampleSpec> specs) {
    HERD_CHECK(false, name(), " does not sample: ", logits.dim(0), " rows, ", specs.size(), " tokens");
    return {};
  }
};

struct BackendOptions {
  std::string device = "auto";  // "cpu", "cuda" or "auto" (cuda when usable)
  int n_threads = 0;            // CPU threads; <= 0: one per hardware thread
  // CPU: weights dequantized to f32 and f32 products, the reference path, instead of the fast
  // kernels (8-bit activations against quantized weights; backend/cpu/cpu-kernels.h).
  bool exact = false;
  bool kv_fp8 = false;  // an FP8 E4M3 KV cache (kv_dtype()) instead of the backend's own type
  int cuda_device = 0;  // which GPU: a process group's rank drives its local rank's
};

std::unique_ptr<Backend> make_cpu_backend(int n_threads, bool exact = false, bool kv_fp8 = false);
// Throws invalid-input for an unknown or unavailable device.
std::unique_ptr<Backend> make_backend(const BackendOptions& o);
// ModelOptions::kv_dtype: true for "fp8", false for "auto"; anything else is invalid input.
bool kv_fp8_named(const std::string& kv_dtype);
bool cuda_usable();

}  // namespace herd
