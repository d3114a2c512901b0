// Loading a Llama 3.1 model and running it: logits and greedy generation.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "herd/export.h"
#include "herd/status.h"

namespace herd {

// This process's place in a group of processes that split one model, one tensor-parallel rank each
// (docs/distributed.md): what torchrun or mpirun put in the environment (process_group_from_env in
// herd/distributed.h). Rank 0 loads the Model or Engine and does the work; every other rank runs
// run_follower_rank with the same model and options.
struct ProcessGroup {
  int world_size = 1;
  int rank = 0;
  int local_rank = 0;       // the rank within its machine: its GPU
  std::string master_addr;  // rank 0's host
  int master_port = 0;      // where rank 0 listens for the others
  int timeout_s = 300;      // how long to wait for a rank to connect, or for its part of a collective
};

struct ModelOptions {
  std::string device = "auto";  // "auto" (cuda when a GPU is present), "cpu" or "cuda"
  int n_threads = 0;            // CPU threads; 0 = one per hardware thread
  int64_t max_context = 4096;   // KV capacity in tokens (clamped to the model's context)
  float meta_rope_factor = 8.0f;  // rope factor for Meta params.json checkpoints, which omit it
  // CPU only: the reference path (weights dequantized to f32, f32 products) instead of the fast
  // kernels, which round activations to 8 bits against quantized weights (docs/cpu.md).
  bool exact = false;
  // The KV cache's type: "auto" (the backend's own: f16 on the CPU, f32 with exact, bf16 on CUDA)
  // or "fp8" (E4M3, a byte an element: half the memory of f16/bf16, a quarter of f32; docs/quantized.md).
  std::string kv_dtype = "auto";
  // Ranks to split the model over (tensor parallelism: docs/distributed.md); each holds 1/N of the
  // heads, FFN columns and vocabulary. Ranks run as threads of this process on the CPU backend,
  // unless process_group says they are processes (then tensor_parallel is its world size).
  int tensor_parallel = 1;
  std::optional<ProcessGroup> process_group;
};

struct ModelInfo {
  int64_t n_vocab = 0, n_embd = 0, n_ff = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0;
  int64_t n_ctx_train = 0;  // max_position_embeddings
  int64_t max_context = 0;  // what this instance's KV cache holds
  bool tied_embeddings = false;
  int32_t bos_id = -1;
  std::vector<int32_t> eos_ids;
  std::string dtype;   // the layers' stored type: "BF16", "F16", "F32", "Q4_K", "FP8", "INT4", ...
  // Bytes a decode step reads at least: every layer's matrices and the LM head as the device holds
  // them (CUDA keeps quantized types as BF16 today), over all ranks.
  int64_t decode_weight_bytes = 0;
  std::string device;  // "cpu", or "cuda:N (card name)"
  std::string kv_dtype;  // the KV cache's element type: "F16", "F32", "BF16" or "F8_E4M3"
  int n_threads = 0;   // CPU threads the backend computes with (0 on a GPU), over all ranks
  int tensor_parallel = 1;  // ranks the model is split over

  std::string name;          // GGUF general.name, else the file or directory name
  std::string architecture;  // "llama": the only one herd loads
  int64_t n_params = 0;      // elements of every weight tensor (a tied output matrix counts once)
  // The weight matrices' stored types, most common first: "Q4_1 x210, Q8_0 x1".
  std::string weight_types;
  // The model's own sampling defaults, as its files give them (generation_config.json, GGUF
  // general.sampling.*); all unset when it has none, and then requests that set nothing are greedy.
  std::optional<bool> default_do_sample;
  std::optional<float> default_temperature, default_top_p;
  std::optional<int32_t> default_top_k;
};

class HERD_API Model {
 public:
  // path: a Hugging Face model directory (config.json + *.safetensors), a Meta one
  // (params.json + *.safetensors) or a llama.cpp GGUF file (docs/gguf.md). On failure *out is
  // untouched and the Status says why.
  static Status load(const std::string& path, const ModelOptions& options, std::unique_ptr<Model>* out);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelInfo& info() const;

  // Runs ids as one fresh sequence from position 0 (no BOS is added).
  // out: row-major f32 [n_rows, n_vocab]; n_rows = ids.size() when all_positions, else 1 (the last).
  Status logits(const std::vector<int32_t>& ids, bool all_positions, std::vector<float>* out);

  // Greedy decoding after ids: appends up to max_new tokens to *out, stopping after an
  // end-of-sequence id. on_token (optional) sees each token as it is made; returning false stops.
  Status generate_greedy(const std::vector<int32_t>& ids, int max_new, std::vector<int32_t>* out,
                         const std::function<bool(int32_t)>& on_token = {});

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A model with random weights, written as a real safetensors directory: for tests and benchmarks.
struct SyntheticModelSpec {
  std::string config_path;   // a config.json (for example a preset from models/)
  int64_t n_layer = 0;       // > 0 overrides the config's layer count
  int64_t n_vocab = 0;       // > 0 overrides the vocabulary size
  // bf16, f16 or f32; or, in memory only (Engine::load_synthetic), the layers' matrices quantized:
  // fp8, int4 (as herd quantize writes them), q8_0, q4_0, q4_1, q6_k.
  std::string dtype = "bf16";
  uint64_t seed = 0;
};
HERD_API Status write_synthetic_model(const SyntheticModelSpec& spec, const std::string& out_dir);

// Backends compiled into this build ("cpu", and "cuda" when built with CUDA) and whether a GPU is usable.
HERD_API std::vector<std::string> available_devices();

}  // namespace herd
