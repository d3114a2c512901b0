#include "model/synthetic.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/check.h"
#include "common/quant.h"
#include "model/quantize-blocks.h"
#include "model/safetensors.h"

namespace herd {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Fills a tensor in fixed chunks, each from its own counter-based stream, on all cores.
std::vector<uint8_t> random_tensor(const Shape& shape, DType dtype, float mean, float stddev, uint64_t stream) {
  const int64_t n = shape_numel(shape);
  std::vector<uint8_t> bytes(size_t(n) * dtype_size(dtype));
  const float half_width = stddev * std::sqrt(3.0f);  // uniform with this deviation
  constexpr int64_t kChunk = int64_t(1) << 20;
  const int64_t n_chunks = (n + kChunk - 1) / kChunk;
  auto fill = [&](int64_t chunk) {
    uint64_t state = splitmix64(stream * 0x100000001b3ull + uint64_t(chunk));
    for (int64_t i = chunk * kChunk; i < std::min(n, (chunk + 1) * kChunk); ++i) {
      state = splitmix64(state);
      const float u = float(state >> 40) * (1.0f / 16777216.0f);  // [0, 1)
      const float v = mean + half_width * (2.0f * u - 1.0f);
      if (dtype == DType::f32) reinterpret_cast<float*>(bytes.data())[i] = v;
      else if (dtype == DType::bf16) reinterpret_cast<uint16_t*>(bytes.data())[i] = f32_to_bf16(v);
      else reinterpret_cast<uint16_t*>(bytes.data())[i] = f32_to_f16(v);
    }
  };
  const int64_t n_threads = std::min<int64_t>(n_chunks, std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> threads;
  for (int64_t t = 0; t < n_threads; ++t)
    threads.emplace_back([&, t] {
      for (int64_t chunk = t; chunk < n_chunks; chunk += n_threads) fill(chunk);
    });
  for (auto& th : threads) th.join();
  return bytes;
}

// A [rows, cols] matrix of `dtype` (a quantized type): each row drawn like random_tensor's values
// (uniform, mean 0) from its own stream, then quantized with herd quantize's arithmetic, on all cores.
std::vector<uint8_t> random_quantized(const Shape& shape, DType dtype, float stddev, uint64_t stream) {
  const int64_t rows = shape[0], cols = shape[1];
  const size_t row_bytes = dtype_nbytes(dtype, cols);
  std::vector<uint8_t> bytes(size_t(rows) * row_bytes);
  const float half_width = stddev * std::sqrt(3.0f);
  auto fill = [&](int64_t r) {
    std::vector<float> x(static_cast<size_t>(cols));
    uint64_t state = splitmix64(stream * 0x100000001b3ull + uint64_t(r));
    for (float& v : x) {
      state = splitmix64(state);
      v = half_width * (2.0f * float(state >> 40) * (1.0f / 16777216.0f) - 1.0f);
    }
    uint8_t* dst = bytes.data() + size_t(r) * row_bytes;
    if (dtype == DType::fp8) {
      std::vector<uint8_t> q(static_cast<size_t>(cols));
      const float scale = quantize_fp8_row(DType::f32, x.data(), cols, q.data());
      for (int64_t b = 0; b < cols / 32; ++b) {
        Fp8Block blk{scale, {}};
        std::memcpy(blk.q, q.data() + b * 32, 32);
        std::memcpy(dst + size_t(b) * sizeof blk, &blk, sizeof blk);
      }
    } else if (dtype == DType::int4) {
      // AWQ's groups of 128 columns (32 when the width is not a multiple of 128).
      const int64_t group = cols % 128 == 0 ? 128 : 32;
      uint8_t q[128];
      for (int64_t g = 0; g < cols / group; ++g) {
        const Int4Group p = quantize_awq_group(x.data() + g * group, group, q);
        for (int64_t b = 0; b < group / 32; ++b) {
          Int4Block blk{p.scale, p.zero, 0, {}};
          for (int i = 0; i < 16; ++i) blk.qs[i] = uint8_t(q[b * 32 + i] | (q[b * 32 + i + 16] << 4));
          std::memcpy(dst + size_t(g * group / 32 + b) * sizeof blk, &blk, sizeof blk);
        }
      }
    } else {
      quantize_ggml_row(dtype, x.data(), cols, dst);
    }
  };
  const int64_t n_threads = std::min<int64_t>(rows, std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> threads;
  for (int64_t t = 0; t < n_threads; ++t)
    threads.emplace_back([&, t] {
      for (int64_t r = t; r < rows; r += n_threads) fill(r);
    });
  for (auto& th : threads) th.join();
  return bytes;
}

}  // namespace

ModelFiles make_synthetic_files(const ModelConfig& c, DType dtype, uint64_t seed) {
  validate_config(c, "synthetic model");
  static constexpr DType kQuantized[] = {DType::fp8, DType::int4, DType::q8_0, DType::q4_0, DType::q4_1, DType::q6_k};
  const bool quantized = std::find(std::begin(kQuantized), std::end(kQuantized), dtype) != std::end(kQuantized);
  HERD_REQUIRE(quantized || dtype == DType::f32 || dtype == DType::f16 || dtype == DType::bf16,
               "synthetic weights must be f32, f16, bf16, fp8, int4, q8_0, q4_0, q4_1 or q6_k, not ", dtype_name(dtype));
  // Quantized models keep BF16 embeddings, norms and (for FP8 and INT4, as their checkpoints do)
  // LM head; every other matrix is quantized.
  const DType plain = quantized ? DType::bf16 : dtype;
  ModelFiles m;
  m.dir = "(synthetic)";
  m.config = c;
  m.config.dtype = plain;
  m.config.qk_layout = QkLayout::half_split;
  HostWeights& w = m.weights;
  uint64_t stream = seed * 1000003;
  auto make_as = [&](DType t, Shape shape, float mean, float stddev) {
    w.owned.push_back(is_quantized(t) ? random_quantized(shape, t, stddev, stream++)
                                      : random_tensor(shape, t, mean, stddev, stream++));
    return TensorView{t, std::move(shape), w.owned.back().data()};
  };
  auto make = [&](Shape shape, float mean, float stddev) {
    const DType t = shape.size() == 2 && quantized ? dtype : plain;
    return make_as(t, std::move(shape), mean, stddev);
  };
  const int64_t q_dim = c.n_head * c.head_dim, kv_dim = c.n_head_kv * c.head_dim;
  const float w_std = 0.02f, norm_std = 0.1f;
  w.tok_embd = make_as(plain, {c.n_vocab, c.n_embd}, 0.f, c.tied_embeddings ? 0.1f : 1.0f);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    LayerWeights lw;
    lw.attn_norm = make({c.n_embd}, 1.f, norm_std);
    lw.wq = make({q_dim, c.n_embd}, 0.f, w_std);
    lw.wk = make({kv_dim, c.n_embd}, 0.f, w_std);
    lw.wv = make({kv_dim, c.n_embd}, 0.f, w_std);
    lw.wo = make({c.n_embd, q_dim}, 0.f, w_std);
    lw.ffn_norm = make({c.n_embd}, 1.f, norm_std);
    lw.w_gate = make({c.n_ff, c.n_embd}, 0.f, w_std);
    lw.w_up = make({c.n_ff, c.n_embd}, 0.f, w_std);
    lw.w_down = make({c.n_embd, c.n_ff}, 0.f, w_std);
    w.layers.push_back(lw);
  }
  w.output_norm = make({c.n_embd}, 1.f, norm_std);
  const DType head = dtype == DType::fp8 || dtype == DType::int4 ? plain : dtype;
  w.output = c.tied_embeddings ? w.tok_embd : make_as(head, {c.n_vocab, c.n_embd}, 0.f, w_std);
  return m;
}

void write_synthetic_model(const ModelConfig& c, DType dtype, uint64_t seed, const std::string& out_dir) {
  HERD_CHECK(!is_quantized(dtype), "write_synthetic_model of ", dtype_name(dtype));
  const ModelFiles m = make_synthetic_files(c, dtype, seed);
  const HostWeights& w = m.weights;
  std::vector<NamedTensor> ts{{"model.embed_tokens.weight", w.tok_embd}, {"model.norm.weight", w.output_norm}};
  if (!c.tied_embeddings) ts.push_back({"lm_head.weight", w.output});
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& lw = w.layers[l];
    const std::string p = str_cat("model.layers.", l, ".");
    for (const auto& [name, view] : {std::pair{"input_layernorm.weight", &lw.attn_norm},
                                     {"self_attn.q_proj.weight", &lw.wq}, {"self_attn.k_proj.weight", &lw.wk},
                                     {"self_attn.v_proj.weight", &lw.wv}, {"self_attn.o_proj.weight", &lw.wo},
                                     {"post_attention_layernorm.weight", &lw.ffn_norm},
                                     {"mlp.gate_proj.weight", &lw.w_gate}, {"mlp.up_proj.weight", &lw.w_up},
                                     {"mlp.down_proj.weight", &lw.w_down}})
      ts.push_back({p + name, *view});
  }
  std::filesystem::create_directories(out_dir);
  write_safetensors(out_dir + "/model.safetensors", ts);
  std::ofstream f(out_dir + "/config.json", std::ios::trunc);
  HERD_REQUIRE(f.good(), out_dir, "/config.json: cannot create");
  f << to_hf_config_json(m.config);
}

}  // namespace herd
