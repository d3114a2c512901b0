// herd quantize to GGUF: the file llama.cpp's convert_hf_to_gguf.py (at the input's own precision)
// followed by llama-quantize (no importance matrix) writes for a Llama: its key/values in their
// order, its tensor names, types and order, q/k rows in Meta's interleaved order, Llama 3.1's
// rope_freqs, and the blocks of ggml's reference quantizers.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <numbers>
#include <optional>

#include "common/check.h"
#include "common/gguf-writer.h"
#include "common/json-limits.h"
#include "common/read-file.h"
#include "common/threadpool.h"
#include "model/quantize-blocks.h"
#include "model/quantize.h"

namespace herd {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Planned {
  std::string name;                  // GGUF name
  const SourceTensor* src = nullptr;  // null: rope_freqs
  DType type = DType::f32;
  int64_t layer = -1;
  int64_t permute_heads = 0;  // q and k: rows to Meta's interleaved order, this many heads
};

// llama-quantize's sort: tensors outside the blocks first, then block by block, by name within.
bool gguf_order(const Planned& a, const Planned& b) {
  if (a.layer != b.layer) return a.layer < b.layer;
  return a.name < b.name;
}

DType default_type(QuantFormat f) {
  switch (f) {
    case QuantFormat::q8_0: return DType::q8_0;
    case QuantFormat::q4_0: return DType::q4_0;
    case QuantFormat::q4_1: return DType::q4_1;
    case QuantFormat::q4_k_m: return DType::q4_k;
    case QuantFormat::q5_k_m: return DType::q5_k;
    default: return DType::q6_k;
  }
}

// llama_ftype of the file (general.file_type): LLAMA_FTYPE_MOSTLY_Q8_0, _Q4_0, _Q4_1, _Q4_K_M, _Q5_K_M,
// _Q6_K.
uint32_t file_type(QuantFormat f) {
  switch (f) {
    case QuantFormat::q8_0: return 7;
    case QuantFormat::q4_0: return 2;
    case QuantFormat::q4_1: return 3;
    case QuantFormat::q4_k_m: return 15;
    case QuantFormat::q5_k_m: return 17;
    default: return 18;
  }
}

// A block type the row length cannot hold falls back as llama-quantize's tensor_type_fallback does;
// the fallbacks of Q4_K (Q5_0) and Q5_K (Q5_1) are types herd does not read, so those are refused.
DType fit(DType t, const SourceTensor& src) {
  const int64_t cols = src.view.shape.back();
  if (cols % dtype_block(t).elems == 0) return t;
  HERD_REQUIRE(t != DType::q4_k && t != DType::q5_k, "tensor \"", src.name, "\" has rows of ", cols,
               " elements, not whole 256-element ", dtype_name(t), " blocks (llama-quantize would store it as ",
               t == DType::q4_k ? "Q5_0" : "Q5_1", ", which herd does not read); choose q4_0 or q4_1");
  if (t == DType::q6_k && cols % 32 == 0) return DType::q8_0;
  return DType::f16;
}

// llama-quantize's use_more_bits: the first and last eighth of the layers and every third between.
bool use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// llama.cpp's LLM_TYPE_70B for a Llama (the one model size its quantizer looks at): 80 layers with
// fewer KV heads than heads.
bool is_70b(const ModelConfig& c) { return c.n_layer == 80 && c.n_head != c.n_head_kv; }

// llama-quantize's choice (llama_tensor_get_type, no imatrix, not --pure): 1-D tensors stay F32;
// the output matrix (or the embedding when it is tied) is Q6_K unless the file is Q8_0 or the rows
// are not whole 256-element blocks (then Q8_0); Q4_K_M and Q5_K_M give attn_v and ffn_down Q6_K in
// the layers use_more_bits picks, and in a 70B Q4_K_M's other attn_v are Q5_K (with grouped KV heads
// they are a small share of the model); everything else takes the file's type.
DType tensor_type(QuantFormat f, const SourceTensor& t, bool is_output, const ModelConfig& c) {
  if (t.view.shape.size() < 2) return DType::f32;
  const int64_t cols = t.view.shape.back();
  const DType base = default_type(f);
  if (is_output) return fit(cols % 256 != 0 || base == DType::q8_0 ? DType::q8_0 : DType::q6_k, t);
  const bool k_mix = f == QuantFormat::q4_k_m || f == QuantFormat::q5_k_m;
  if (k_mix && (t.kind == "v_proj" || t.kind == "down_proj") && use_more_bits(t.layer, c.n_layer))
    return fit(DType::q6_k, t);
  if (base == DType::q4_k && t.kind == "v_proj" && is_70b(c)) return fit(DType::q5_k, t);
  return fit(base, t);
}

// Python's str.title() on ASCII: a letter after a non-letter upper-cased, others lower-cased.
std::string title(const std::string& w) {
  std::string out = w;
  bool prev_letter = false;
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    const bool letter = std::isalpha(u) != 0;
    if (letter) c = char(prev_letter ? std::tolower(u) : std::toupper(u));
    prev_letter = letter;
  }
  return out;
}

// gguf-py's Metadata.id_to_title on the directory name: words split at '-' and spaces; all-lowercase
// words that are not versions ("v2", "3.1") title-cased.
std::string model_name(const std::string& dir) {
  std::string id = fs::path(dir).lexically_normal().filename().string();
  if (id.empty() || id == ".") id = fs::absolute(dir).lexically_normal().filename().string();
  std::replace(id.begin(), id.end(), '-', ' ');
  std::string out, word;
  auto flush = [&] {
    if (word.empty()) return;
    auto any = [&](int (*is)(int)) {
      return std::any_of(word.begin(), word.end(), [&](char c) { return is(static_cast<unsigned char>(c)) != 0; });
    };
    const bool has_lower = any(std::islower), has_upper = any(std::isupper);
    const bool version = std::isdigit(static_cast<unsigned char>(word[0])) ||
                         (word.size() > 1 && word[0] == 'v' && std::isdigit(static_cast<unsigned char>(word[1])));
    if (!out.empty()) out += ' ';
    out += has_lower && !has_upper && !version ? title(word) : word;
    word.clear();
  };
  for (char c : id) {
    if (std::isspace(static_cast<unsigned char>(c))) flush();
    else word += c;
  }
  flush();
  return out;
}

// gguf-py's model_weight_count_rounded_notation: "67M", "8.0B", "1.2B", "405B".
std::string size_label(int64_t n) {
  double scaled;
  const char* suffix;
  if (double(n) > 1e12) scaled = double(n) * 1e-12, suffix = "T";
  else if (double(n) > 1e9) scaled = double(n) * 1e-9, suffix = "B";
  else if (double(n) > 1e6) scaled = double(n) * 1e-6, suffix = "M";
  else scaled = double(n) * 1e-3, suffix = "K";
  std::string whole = std::to_string(int64_t(std::nearbyint(scaled)));  // Python's round: half to even
  whole.erase(0, std::min(whole.find_first_not_of('0'), whole.size()));
  const int fix = std::max(2 - int(whole.size()), 0);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f%s", fix, scaled, suffix);
  return buf;
}

// Llama 3.1's rope_freqs: the divisor of each frequency under llama3 scaling, as the converter's
// generate_extra_tensors computes it in torch float32 (its pow rounds correctly; `a / tensor` is a
// reciprocal times a), so that the file matches the converter's bit for bit.
std::vector<float> rope_factors(const ModelConfig& c) {
  const RopeScaling& s = *c.rope_scaling;
  std::vector<float> out(size_t(c.head_dim / 2));
  const double low_wavelen = double(s.original_max_position) / double(s.low_freq_factor);
  const double high_wavelen = double(s.original_max_position) / double(s.high_freq_factor);
  const float two_pi = float(2.0 * std::numbers::pi);
  for (int64_t i = 0; i < c.head_dim / 2; ++i) {
    const float exponent = float(2 * i) / float(c.head_dim);
    const float freq = 1.0f / float(std::pow(double(c.rope_theta), double(exponent)));
    const float wavelen = (1.0f / freq) * two_pi;
    float f;
    if (double(wavelen) < high_wavelen) {
      f = 1.0f;
    } else if (double(wavelen) > low_wavelen) {
      f = s.factor;
    } else {
      const float smooth = ((1.0f / wavelen) * float(s.original_max_position) - s.low_freq_factor) /
                           float(double(s.high_freq_factor) - double(s.low_freq_factor));
      f = 1.0f / ((1.0f - smooth) / s.factor + smooth);
    }
    out[size_t(i)] = f;
  }
  return out;
}

// generation_config.json's sampling defaults as general.sampling.* (gguf-py's Metadata order).
void add_sampling(GgufWriter& w, const std::string& dir) {
  const fs::path p = fs::path(dir) / "generation_config.json";
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return;
  const std::optional<json> g = parse_json_limited(read_file(p.string(), kMaxJsonFileBytes, "a JSON file"), p.string());
  if (!g || !g->is_object()) return;  // the converter ignores a generation config it cannot read
  auto number = [&](const char* key) -> const json* {
    auto it = g->find(key);
    return it != g->end() && it->is_number() ? &*it : nullptr;
  };
  if (const json* v = number("top_k"); v && v->is_number_integer())
    w.add_i32("general.sampling.top_k", v->get<int32_t>());
  if (const json* v = number("top_p")) w.add_f32("general.sampling.top_p", v->get<float>());
  if (const json* v = number("min_p")) w.add_f32("general.sampling.min_p", v->get<float>());
  if (const json* v = number("temperature")) w.add_f32("general.sampling.temp", v->get<float>());
  const json* repeat = number("penalty_repeat");
  if (!repeat) repeat = number("repetition_penalty");
  if (repeat) w.add_f32("general.sampling.penalty_repeat", repeat->get<float>());
}

// One tensor's bytes in GGUF: rows converted to f32, permuted for q/k, quantized or cast.
std::vector<uint8_t> convert(const Planned& p, ThreadPool& pool) {
  const SourceTensor& t = *p.src;
  const int64_t cols = t.view.shape.back();
  const int64_t rows = t.view.numel() / cols;
  const size_t row_bytes = dtype_nbytes(p.type, cols);
  std::vector<uint8_t> out(row_bytes * size_t(rows));
  const int64_t head_dim = p.permute_heads ? rows / p.permute_heads : 0;
  NonFinite bad;
  pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; ++r) {
      // Output row h*hd + 2j + s (Meta's pairs) is input row h*hd + s*hd/2 + j (half-split).
      int64_t src = r;
      if (head_dim) {
        const int64_t h = r / head_dim, i = r % head_dim;
        src = h * head_dim + (i % 2) * (head_dim / 2) + i / 2;
      }
      read_row_f32(t, src, row.data(), bad);
      uint8_t* dst = out.data() + size_t(r) * row_bytes;
      if (p.type == DType::f32) {
        std::memcpy(dst, row.data(), row_bytes);
      } else if (p.type == DType::f16) {
        for (int64_t c = 0; c < cols; ++c) {
          const uint16_t h = f32_to_f16(row[size_t(c)]);
          std::memcpy(dst + 2 * c, &h, 2);
        }
      } else {
        quantize_ggml_row(p.type, row.data(), cols, dst);
      }
    }
  });
  bad.check(t);
  return out;
}

}  // namespace

void write_quantized_gguf(const QuantizeInput& in, const std::string& out_file, const QuantizeSettings& s,
                          ThreadPool& pool, QuantizeTracker& tracker) {
  const ModelConfig& c = in.files.config;
  const json config = json::parse(in.config_text);

  std::vector<Planned> plan;
  std::optional<std::vector<float>> rope;
  if (c.rope_scaling) {
    rope = rope_factors(c);
    plan.push_back({"rope_freqs.weight", nullptr, DType::f32, -1, 0});
  }
  static const std::map<std::string, std::string> kNames = {
      {"input_layernorm", "attn_norm"}, {"q_proj", "attn_q"},   {"k_proj", "attn_k"},
      {"v_proj", "attn_v"},             {"o_proj", "attn_output"}, {"post_attention_layernorm", "ffn_norm"},
      {"gate_proj", "ffn_gate"},        {"up_proj", "ffn_up"},  {"down_proj", "ffn_down"}};
  for (const SourceTensor& t : in.tensors) {
    Planned p;
    p.src = &t;
    p.layer = t.layer;
    bool is_output = false;
    if (t.kind == "embed_tokens") {
      p.name = "token_embd.weight";
      is_output = c.tied_embeddings;  // llama-quantize gives a tied embedding the output's type
    } else if (t.kind == "norm") {
      p.name = "output_norm.weight";
    } else if (t.kind == "lm_head") {
      p.name = "output.weight";
      is_output = true;
    } else {
      p.name = str_cat("blk.", t.layer, ".", kNames.at(t.kind), ".weight");
      if (t.kind == "q_proj") p.permute_heads = c.n_head;
      if (t.kind == "k_proj") p.permute_heads = c.n_head_kv;
    }
    p.type = tensor_type(s.format, t, is_output, c);
    plan.push_back(std::move(p));
  }
  std::stable_sort(plan.begin(), plan.end(), gguf_order);

  int64_t n_params = 0;
  for (const Planned& p : plan) n_params += p.src ? p.src->view.numel() : int64_t(rope->size());

  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string("general.type", "model");
  add_sampling(w, in.dir);
  w.add_string("general.name", model_name(in.dir));
  w.add_string("general.size_label", size_label(n_params));
  w.add_u32("llama.block_count", uint32_t(c.n_layer));
  w.add_u32("llama.context_length", uint32_t(c.n_ctx_train));
  w.add_u32("llama.embedding_length", uint32_t(c.n_embd));
  w.add_u32("llama.feed_forward_length", uint32_t(c.n_ff));
  w.add_u32("llama.attention.head_count", uint32_t(c.n_head));
  w.add_u32("llama.attention.head_count_kv", uint32_t(c.n_head_kv));
  w.add_f32("llama.rope.freq_base", c.rope_theta);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", c.norm_eps);
  if (auto it = config.find("head_dim"); it != config.end() && !it->is_null()) {
    w.add_u32("llama.attention.key_length", uint32_t(c.head_dim));
    w.add_u32("llama.attention.value_length", uint32_t(c.head_dim));
  }
  w.add_u32("llama.vocab_size", uint32_t(c.n_vocab));
  w.add_u32("llama.rope.dimension_count", uint32_t(c.head_dim));
  add_gguf_vocab(w, in, c.n_vocab);
  w.add_u32("general.quantization_version", 2);  // GGML_QNT_VERSION
  w.add_u32("general.file_type", file_type(s.format));

  for (const Planned& p : plan) w.add_tensor(p.name, p.type, p.src ? p.src->view.shape : Shape{int64_t(rope->size())});
  tracker.start();  // the tokenizer and every tensor type settled: the writing begins
  w.begin(out_file);
  for (const Planned& p : plan) {
    if (!p.src) {
      w.write_tensor(rope->data(), rope->size() * 4);
      continue;
    }
    const std::vector<uint8_t> bytes = convert(p, pool);
    w.write_tensor(bytes.data(), bytes.size());
    tracker.done(*p.src, p.name);
  }
  w.finish();
}

}  // namespace herd
