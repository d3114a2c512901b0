// herd quantize to safetensors checkpoints: compressed-tensors FP8 (FP8_DYNAMIC), AutoAWQ GEMM and
// GPTQModel's "gptq" format, each with the quantization_config its tool writes, so that herd,
// transformers and vLLM load them alike.
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "common/check.h"
#include "common/threadpool.h"
#include "model/quantize-blocks.h"
#include "model/quantize.h"
#include "model/safetensors-writer.h"

namespace herd {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Files of a Hugging Face directory that travel with the weights, copied byte for byte.
constexpr const char* kCopied[] = {"generation_config.json", "tokenizer.json",     "tokenizer_config.json",
                                   "special_tokens_map.json", "tokenizer.model",  "chat_template.jinja",
                                   "chat_template.json"};

// compressed-tensors 0.20's config for its FP8_DYNAMIC preset (weights per output channel, static;
// activations per token, dynamic), with lm_head ignored: what ModelCompressor.update_config writes.
json fp8_config() {
  json weights = {{"dynamic", false}, {"group_size", nullptr}, {"num_bits", 8},
                  {"strategy", "channel"}, {"symmetric", true}, {"type", "float"}};
  json inputs = {{"dynamic", true}, {"group_size", nullptr}, {"num_bits", 8},
                 {"strategy", "token"}, {"symmetric", true}, {"type", "float"}};
  json group = {{"format", "float-quantized"}, {"input_activations", inputs}, {"output_activations", nullptr},
                {"targets", {"Linear"}}, {"weights", weights}};
  return {{"config_groups", {{"group_0", group}}},
          {"format", "float-quantized"},
          {"global_compression_ratio", nullptr},
          {"ignore", {"lm_head"}},
          {"kv_cache_scheme", nullptr},
          {"moe_sparsity_config", nullptr},
          {"quant_method", "compressed-tensors"},
          {"quantization_status", "compressed"},
          {"sparsity_config", json::object()},
          {"transform_config", json::object()},
          {"version", "0.20.1"}};
}

// AutoAWQ's AwqConfig.to_transformers_dict().
json awq_config(int64_t group) {
  return {{"bits", 4},           {"group_size", group},   {"modules_to_not_convert", nullptr},
          {"quant_method", "awq"}, {"version", "gemm"}, {"zero_point", true}};
}

// GPTQModel's quantize config for symmetric 4-bit groups without act order, in its original
// checkpoint format (zero points stored minus one).
json gptq_config(int64_t group) {
  return {{"bits", 4},         {"checkpoint_format", "gptq"}, {"desc_act", false},     {"group_size", group},
          {"lm_head", false},  {"meta", {{"quantizer", {"herd"}}}}, {"pack_dtype", "int32"},
          {"quant_method", "gptq"}, {"sym", true}};
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  HERD_REQUIRE(f.good(), path.string(), ": write failed");
}

// The bits of a scale value of type t.
void store_scale(DType t, float v, uint8_t* dst) {
  if (t == DType::bf16) {
    const uint16_t h = f32_to_bf16(v);
    std::memcpy(dst, &h, 2);
  } else if (t == DType::f16) {
    const uint16_t h = f32_to_f16(v);
    std::memcpy(dst, &h, 2);
  } else {
    std::memcpy(dst, &v, 4);
  }
}

struct Linear {
  const SourceTensor& t;
  int64_t out, in;
  std::string prefix;  // "model.layers.3.self_attn.q_proj"
};

Linear linear_of(const SourceTensor& t) {
  return {t, t.view.shape[0], t.view.shape[1], t.name.substr(0, t.name.size() - std::strlen(".weight"))};
}

// --- FP8: weight F8_E4M3 [out, in], weight_scale [out, 1] in the weight's own type.
void plan_fp8(SafetensorsWriter& w, const Linear& l) {
  w.plan(l.prefix + ".weight", DType::f8_e4m3, {l.out, l.in});
  w.plan(l.prefix + ".weight_scale", l.t.view.dtype, {l.out, 1});
}

void write_fp8(SafetensorsWriter& w, const Linear& l, ThreadPool& pool) {
  std::vector<uint8_t> q(size_t(l.out * l.in));
  std::vector<uint8_t> scale(size_t(l.out) * dtype_size(l.t.view.dtype));
  NonFinite bad;
  pool.parallel_for(l.out, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(size_t(l.in));
    for (int64_t r = r0; r < r1; ++r) {
      read_row_f32(l.t, r, row.data(), bad);
      const float s = quantize_fp8_row(l.t.view.dtype, row.data(), l.in, q.data() + r * l.in);
      store_scale(l.t.view.dtype, s, scale.data() + size_t(r) * dtype_size(l.t.view.dtype));
    }
  });
  bad.check(l.t);
  w.write(q.data(), q.size());
  w.write(scale.data(), scale.size());
}

// --- AWQ and GPTQ: each group quantized per output row; rows go in runs of 8, the outputs one
// int32 word packs (AWQ's qweight and qzeros, GPTQ's qzeros).
void check_int4_shape(const Linear& l, int64_t group) {
  HERD_REQUIRE(l.in % group == 0, "tensor \"", l.t.name, "\" has ", l.in, " input columns, not whole groups of ", group,
               " (choose a group size that divides every layer's input width)");
  HERD_REQUIRE(l.out % 8 == 0, "tensor \"", l.t.name, "\" has ", l.out,
               " output rows; 4-bit packing needs a multiple of 8");
}

struct Int4Tensors {
  std::vector<int32_t> qweight, qzeros;
  std::vector<uint16_t> scales;  // [groups, out]
};

// Quantizes l with `quantize` (AWQ's or GPTQ's group rule); pack(codes, zeros, j) stores the 8 rows
// 8j..8j+7: codes[i * in + k], zeros[i * groups + g].
template <typename Quantize, typename Pack>
void quantize_int4(const Linear& l, int64_t group, ThreadPool& pool, Int4Tensors& t, Quantize quantize, Pack pack) {
  const int64_t groups = l.in / group;
  t.scales.resize(size_t(groups * l.out));
  NonFinite bad;
  pool.parallel_for(l.out / 8, [&](int64_t j0, int64_t j1) {
    std::vector<float> row(size_t(l.in));
    std::vector<uint8_t> codes(size_t(8 * l.in)), zeros(size_t(8 * groups));
    for (int64_t j = j0; j < j1; ++j) {
      for (int64_t i = 0; i < 8; ++i) {
        const int64_t o = 8 * j + i;
        read_row_f32(l.t, o, row.data(), bad);
        for (int64_t g = 0; g < groups; ++g) {
          const Int4Group q = quantize(row.data() + g * group, group, codes.data() + i * l.in + g * group);
          t.scales[size_t(g * l.out + o)] = q.scale;
          zeros[size_t(i * groups + g)] = q.zero;
        }
      }
      pack(codes, zeros, j);
    }
  });
  bad.check(l.t);
}

// AWQ GEMM: qweight I32 [in, out / 8], qzeros I32 [in / group, out / 8], scales F16 [in / group,
// out]; nibble n of a word holds output column kOrder[n] of its 8 (AutoAWQ's pack order).
constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

void plan_awq(SafetensorsWriter& w, const Linear& l, int64_t group) {
  check_int4_shape(l, group);
  w.plan(l.prefix + ".qweight", DType::i32, {l.in, l.out / 8});
  w.plan(l.prefix + ".qzeros", DType::i32, {l.in / group, l.out / 8});
  w.plan(l.prefix + ".scales", DType::f16, {l.in / group, l.out});
}

void write_awq(SafetensorsWriter& w, const Linear& l, int64_t group, ThreadPool& pool) {
  const int64_t groups = l.in / group, words = l.out / 8;
  Int4Tensors t;
  t.qweight.resize(size_t(l.in * words));
  t.qzeros.resize(size_t(groups * words));
  quantize_int4(l, group, pool, t, quantize_awq_group,
                [&](const std::vector<uint8_t>& codes, const std::vector<uint8_t>& zeros, int64_t j) {
                  for (int64_t k = 0; k < l.in; ++k) {
                    uint32_t word = 0;
                    for (int n = 0; n < 8; ++n) word |= uint32_t(codes[size_t(kAwqOrder[n] * l.in + k)]) << (4 * n);
                    t.qweight[size_t(k * words + j)] = int32_t(word);
                  }
                  for (int64_t g = 0; g < groups; ++g) {
                    uint32_t word = 0;
                    for (int n = 0; n < 8; ++n) word |= uint32_t(zeros[size_t(kAwqOrder[n] * groups + g)]) << (4 * n);
                    t.qzeros[size_t(g * words + j)] = int32_t(word);
                  }
                });
  w.write(t.qweight.data(), t.qweight.size() * 4);
  w.write(t.qzeros.data(), t.qzeros.size() * 4);
  w.write(t.scales.data(), t.scales.size() * 2);
}

// GPTQ ("gptq" checkpoint format): qweight I32 [in / 8, out] (8 input rows a word, lowest nibble
// first), qzeros I32 [groups, out / 8] (zero point minus one, 8 outputs a word in order), scales
// F16 [groups, out], g_idx I32 [in] = k / group.
void plan_gptq(SafetensorsWriter& w, const Linear& l, int64_t group) {
  check_int4_shape(l, group);
  w.plan(l.prefix + ".qweight", DType::i32, {l.in / 8, l.out});
  w.plan(l.prefix + ".qzeros", DType::i32, {l.in / group, l.out / 8});
  w.plan(l.prefix + ".scales", DType::f16, {l.in / group, l.out});
  w.plan(l.prefix + ".g_idx", DType::i32, {l.in});
}

void write_gptq(SafetensorsWriter& w, const Linear& l, int64_t group, ThreadPool& pool) {
  const int64_t groups = l.in / group, words = l.out / 8;
  Int4Tensors t;
  t.qweight.resize(size_t(l.in / 8 * l.out));
  t.qzeros.resize(size_t(groups * words));
  quantize_int4(l, group, pool, t, quantize_gptq_group,
                [&](const std::vector<uint8_t>& codes, const std::vector<uint8_t>& zeros, int64_t j) {
                  for (int64_t i = 0; i < 8; ++i) {
                    const int64_t o = 8 * j + i;
                    for (int64_t kk = 0; kk < l.in / 8; ++kk) {
                      uint32_t word = 0;
                      for (int n = 0; n < 8; ++n) word |= uint32_t(codes[size_t(i * l.in + 8 * kk + n)]) << (4 * n);
                      t.qweight[size_t(kk * l.out + o)] = int32_t(word);
                    }
                  }
                  for (int64_t g = 0; g < groups; ++g) {
                    uint32_t word = 0;
                    for (int n = 0; n < 8; ++n) word |= (uint32_t(zeros[size_t(n * groups + g)] - 1) & 0xFu) << (4 * n);
                    t.qzeros[size_t(g * words + j)] = int32_t(word);
                  }
                });
  std::vector<int32_t> g_idx(size_t(l.in));
  for (int64_t k = 0; k < l.in; ++k) g_idx[size_t(k)] = int32_t(k / group);
  w.write(t.qweight.data(), t.qweight.size() * 4);
  w.write(t.qzeros.data(), t.qzeros.size() * 4);
  w.write(t.scales.data(), t.scales.size() * 2);
  w.write(g_idx.data(), g_idx.size() * 4);
}

}  // namespace

void write_quantized_checkpoint(const QuantizeInput& in, const std::string& out_dir, const QuantizeSettings& s,
                                ThreadPool& pool, QuantizeTracker& tracker) {
  SafetensorsWriter w(out_dir);
  for (const SourceTensor& t : in.tensors) {
    if (!t.linear) {
      w.plan(t.name, t.view.dtype, t.view.shape);
      continue;
    }
    const Linear l = linear_of(t);
    switch (s.format) {
      case QuantFormat::fp8: plan_fp8(w, l); break;
      case QuantFormat::awq: plan_awq(w, l, s.group_size); break;
      case QuantFormat::gptq: plan_gptq(w, l, s.group_size); break;
      default: HERD_CHECK(false, "not a safetensors format");
    }
  }
  tracker.start();  // every shape checked: the writing begins
  for (const SourceTensor& t : in.tensors) {
    if (!t.linear) {
      // Norms, the embedding and the LM head travel unchanged (GGUF aside, the formats keep them).
      w.write(t.view.data, t.view.nbytes());
      tracker.done(t, t.name);
      continue;
    }
    const Linear l = linear_of(t);
    switch (s.format) {
      case QuantFormat::fp8: write_fp8(w, l, pool); break;
      case QuantFormat::awq: write_awq(w, l, s.group_size, pool); break;
      case QuantFormat::gptq: write_gptq(w, l, s.group_size, pool); break;
      default: break;
    }
    tracker.done(t, l.prefix);
  }
  w.finish();

  json config = json::parse(in.config_text);
  json qc = s.format == QuantFormat::fp8   ? fp8_config()
            : s.format == QuantFormat::awq ? awq_config(s.group_size)
                                           : gptq_config(s.group_size);
  config["quantization_config"] = qc;
  write_text(fs::path(out_dir) / "config.json", config.dump(2));
  if (s.format == QuantFormat::gptq) write_text(fs::path(out_dir) / "quantize_config.json", qc.dump(2));
  for (const char* name : kCopied) {
    const fs::path src = fs::path(in.dir) / name;
    std::error_code ec;
    if (!fs::is_regular_file(src, ec)) continue;
    fs::copy_file(src, fs::path(out_dir) / name, ec);
    HERD_REQUIRE(!ec, src.string(), ": cannot copy: ", ec.message());
  }
}

}  // namespace herd
