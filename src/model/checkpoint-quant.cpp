#include "model/checkpoint-quant.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <numeric>
#include <optional>
#include <vector>

#include "common/check.h"
#include "common/json-limits.h"
#include "common/quant.h"
#include "common/threadpool.h"
#include "model/config.h"

namespace herd {
namespace {

using nlohmann::json;

using Method = CheckpointQuant::Method;
using Scheme = CheckpointQuant;

// quantization_config's fields, each checked against what herd supports; errors name the field.
class ConfigReader {
 public:
  ConfigReader(const json& qc, const std::string& source) : qc_(qc), src_(source) {}

  const json* get(const json& obj, const char* key) const {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  std::string str(const json& obj, const char* key, const std::string& path, const char* fallback = nullptr) const {
    const json* v = get(obj, key);
    if (!v && fallback) return fallback;
    HERD_REQUIRE(v && v->is_string(), src_, ": ", path, key, " must be a string");
    return v->get<std::string>();
  }
  int64_t integer(const json& obj, const char* key, const std::string& path, std::optional<int64_t> fallback = {}) const {
    const json* v = get(obj, key);
    if (!v && fallback) return *fallback;
    HERD_REQUIRE(v && v->is_number_integer(), src_, ": ", path, key, " must be an integer");
    return v->get<int64_t>();
  }
  bool boolean(const json& obj, const char* key, const std::string& path, bool fallback) const {
    const json* v = get(obj, key);
    if (!v) return fallback;
    HERD_REQUIRE(v->is_boolean(), src_, ": ", path, key, " must be true or false");
    return v->get<bool>();
  }
  [[noreturn]] void unsupported(const std::string& field, const std::string& value, const char* reads) const {
    fail_input(src_, ": ", field, " is ", value, "; herd reads ", reads);
  }

  Scheme read() const {
    const std::string method = str(qc_, "quant_method", "quantization_config.");
    if (method == "compressed-tensors") return compressed_tensors();
    if (method == "fbgemm_fp8") {
      if (const json* ub = get(qc_, "activation_scale_ub"))
        HERD_REQUIRE(ub->is_number() && ub->get<double>() > 0, src_,
                     ": quantization_config.activation_scale_ub must be a positive number");
      return Scheme{};
    }
    if (method == "awq") return awq();
    if (method == "gptq") return gptq();
    unsupported("quantization_config.quant_method", "\"" + method + "\"",
                "\"compressed-tensors\" (FP8), \"fbgemm_fp8\", \"awq\" and \"gptq\" checkpoints");
  }

 private:
  Scheme compressed_tensors() const {
    const std::string format = str(qc_, "format", "quantization_config.");
    if (format != "float-quantized")
      unsupported("quantization_config.format", "\"" + format + "\"", "\"float-quantized\" (FP8) compressed-tensors checkpoints");
    // A KV cache scheme stores per-layer FP8 scales (self_attn.k_scale, v_scale; model/weights.cpp),
    // which an FP8 cache (--kv-dtype fp8) then uses.
    if (const json* kv = get(qc_, "kv_cache_scheme")) {
      const std::string at = "quantization_config.kv_cache_scheme.";
      float_8bit(*kv, at);
      if (const std::string strategy = str(*kv, "strategy", at, "tensor"); strategy != "tensor")
        unsupported(at + "strategy", "\"" + strategy + "\"", "KV cache scales per layer (\"tensor\")");
      if (!boolean(*kv, "symmetric", at, true)) unsupported(at + "symmetric", "false", "symmetric FP8 KV caches");
      if (boolean(*kv, "dynamic", at, false)) unsupported(at + "dynamic", "true", "KV cache scales stored in the checkpoint");
    }
    // Rotated weights need the rotations at run time; sparse ones another tensor layout.
    for (const char* key : {"transform_config", "sparsity_config"})
      if (const json* v = get(qc_, key); v && !(v->is_object() && v->empty()))
        unsupported(std::string("quantization_config.") + key, "set", "checkpoints without transforms or sparsity");
    const json* groups = get(qc_, "config_groups");
    HERD_REQUIRE(groups && groups->is_object() && !groups->empty(), src_,
                 ": quantization_config.config_groups must be a non-empty object");
    for (const auto& [name, g] : groups->items()) {
      const std::string at = "quantization_config.config_groups." + name + ".";
      HERD_REQUIRE(g.is_object(), src_, ": ", at.substr(0, at.size() - 1), " must be an object");
      const json* wq = get(g, "weights");
      HERD_REQUIRE(wq && wq->is_object(), src_, ": ", at, "weights must be an object");
      float_8bit(*wq, at + "weights.");
      const std::string strategy = str(*wq, "strategy", at + "weights.");
      if (strategy != "tensor" && strategy != "channel")
        unsupported(at + "weights.strategy", "\"" + strategy + "\"", "FP8 weights scaled per tensor or per channel");
      if (!boolean(*wq, "symmetric", at + "weights.", true))
        unsupported(at + "weights.symmetric", "false", "symmetric FP8 weights");
      if (boolean(*wq, "dynamic", at + "weights.", false))
        unsupported(at + "weights.dynamic", "true", "FP8 weights stored with their scales");
      // Activations' FP8 rounding (static or per token) is not emulated: W8A16.
      if (const json* in = get(g, "input_activations")) float_8bit(*in, at + "input_activations.");
      if (get(g, "output_activations"))
        unsupported(at + "output_activations", "set", "checkpoints whose outputs are not quantized");
    }
    return Scheme{};
  }

  void float_8bit(const json& q, const std::string& at) const {
    HERD_REQUIRE(q.is_object(), src_, ": ", at.substr(0, at.size() - 1), " must be an object");
    if (const int64_t bits = integer(q, "num_bits", at); bits != 8) unsupported(at + "num_bits", std::to_string(bits), "8-bit FP8");
    if (const std::string type = str(q, "type", at); type != "float") unsupported(at + "type", "\"" + type + "\"", "FP8 (\"float\")");
  }

  int64_t group_size(const char* key, bool allow_whole_row) const {
    const int64_t g = integer(qc_, key, "quantization_config.");
    if (allow_whole_row && g == -1) return 0;
    if (g <= 0 || g % 32 != 0)
      unsupported(std::string("quantization_config.") + key, std::to_string(g),
                  allow_whole_row ? "groups of a multiple of 32 columns, or -1" : "groups of a multiple of 32 columns");
    return g;
  }

  void four_bits(const char* key) const {
    if (const int64_t bits = integer(qc_, key, "quantization_config."); bits != 4)
      unsupported(std::string("quantization_config.") + key, std::to_string(bits), "4-bit weights");
  }

  Scheme awq() const {
    Scheme s;
    s.method = Method::awq;
    four_bits(get(qc_, "bits") ? "bits" : "w_bit");
    s.group = group_size(get(qc_, "group_size") ? "group_size" : "q_group_size", false);
    std::string version = str(qc_, "version", "quantization_config.", "gemm");
    std::transform(version.begin(), version.end(), version.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    if (version != "gemm") unsupported("quantization_config.version", "\"" + version + "\"", "AWQ's GEMM packing (\"gemm\")");
    s.zero_point = boolean(qc_, "zero_point", "quantization_config.", true);
    return s;
  }

  Scheme gptq() const {
    Scheme s;
    s.method = Method::gptq;
    four_bits("bits");
    s.group = group_size("group_size", true);
    // act order (desc_act) needs no setting: g_idx says where each column's group is.
    boolean(qc_, "desc_act", "quantization_config.", false);
    boolean(qc_, "sym", "quantization_config.", true);
    const char* key = get(qc_, "checkpoint_format") ? "checkpoint_format" : "format";
    const std::string format = str(qc_, key, "quantization_config.", "gptq");
    if (format != "gptq" && format != "gptq_v2")
      unsupported(std::string("quantization_config.") + key, "\"" + format + "\"", "\"gptq\" and \"gptq_v2\" checkpoints");
    s.zeros_minus_one = format == "gptq";
    return s;
  }

  const json& qc_;
  const std::string& src_;
};

// One quantized layer's tensors, taken out of by_name as they are used.
class Layer {
 public:
  // primary: the tensor that marks the layer as quantized ("weight" or "qweight"), which is there.
  Layer(TensorsByName& by_name, std::string prefix, const char* primary)
      : by_name_(by_name), prefix_(std::move(prefix)), file_(by_name.at(prefix_ + "." + primary).second) {}

  // "<prefix>.<suffix>"; nullopt when absent and optional.
  std::optional<TensorView> take(const char* suffix, bool required, const char* what) {
    const std::string name = prefix_ + "." + suffix;
    auto it = by_name_.find(name);
    if (it == by_name_.end()) {
      HERD_REQUIRE(!required, file_, ": missing tensor \"", name, "\" (", what, ")");
      return std::nullopt;
    }
    TensorView v = it->second.first;
    by_name_.erase(it);
    return v;
  }

  // The view of `dtype` and `shape` whose blocks `fill` writes, named "<prefix>.weight".
  template <typename Fill>
  TensorView& put(HostWeights& w, DType dtype, Shape shape, Fill fill) {
    const std::string name = prefix_ + ".weight";
    HERD_REQUIRE(!by_name_.count(name), file_, ": \"", name, "\" is there as well as the quantized tensors of \"", prefix_, "\"");
    std::vector<uint8_t>& buf = w.owned.emplace_back(dtype_nbytes(dtype, shape_numel(shape)));
    fill(buf.data());
    return by_name_.emplace(name, std::make_pair(TensorView{dtype, std::move(shape), buf.data()}, file_)).first->second.first;
  }

  void check_shape(const TensorView& t, const char* suffix, const Shape& want, const char* why) const {
    HERD_REQUIRE(t.shape == want, file_, ": tensor \"", prefix_, ".", suffix, "\" has shape ", shape_str(t.shape), ", ",
                 why, " implies ", shape_str(want));
  }
  void check_dtype(const TensorView& t, const char* suffix, bool ok, const char* want) const {
    HERD_REQUIRE(ok, file_, ": tensor \"", prefix_, ".", suffix, "\" is ", dtype_name(t.dtype), ", must be ", want);
  }
  [[noreturn]] void fail(const std::string& what) const { fail_input(file_, ": \"", prefix_, "\": ", what); }
  const std::string& file() const { return file_; }
  const std::string& prefix() const { return prefix_; }

 private:
  TensorsByName& by_name_;
  std::string prefix_;
  std::string file_;
};

void atomic_min(std::atomic<int64_t>& a, int64_t v) {
  for (int64_t cur = a.load(); v < cur && !a.compare_exchange_weak(cur, v);) {
  }
}

bool is_float(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }

float float_at(const TensorView& t, int64_t i) {
  float v;
  dequantize_row(t.dtype, static_cast<const uint8_t*>(t.data) + dtype_nbytes(t.dtype, i), &v, 1);
  return v;
}

int32_t i32_at(const TensorView& t, int64_t i) {
  int32_t v;
  std::memcpy(&v, static_cast<const uint8_t*>(t.data) + 4 * i, 4);
  return v;
}

// weight F8_E4M3 [out, in] and weight_scale ([] or [1]: per tensor; [out] or [out, 1]: per row)
// -> FP8 blocks; input_scale (compressed-tensors' static activation scale) and input_scale_ub
// (fbgemm's bound) are checked and dropped: activations stay unquantized.
void convert_fp8(Layer& l, HostWeights& w, ThreadPool& pool) {
  const TensorView wt = *l.take("weight", true, "");
  HERD_REQUIRE(wt.shape.size() == 2, l.file(), ": tensor \"", l.prefix(), ".weight\" has shape ", shape_str(wt.shape),
               ", must be [out, in]");
  const int64_t out = wt.shape[0], in = wt.shape[1];
  const TensorView scale = *l.take("weight_scale", true, "the scale of an FP8 weight");
  l.check_dtype(scale, "weight_scale", is_float(scale.dtype), "F32, BF16 or F16");
  const bool per_row = scale.numel() == out && out != 1;
  if (!per_row && scale.numel() != 1)
    l.fail(str_cat("weight_scale has shape ", shape_str(scale.shape), "; an FP8 weight of ", out,
                   " rows has one scale, or one per row"));
  for (const char* extra : {"input_scale", "input_scale_ub"})
    if (auto s = l.take(extra, false, "")) {
      l.check_dtype(*s, extra, is_float(s->dtype), "F32, BF16 or F16");
      if (s->numel() != 1 || !(float_at(*s, 0) > 0.f) || !std::isfinite(float_at(*s, 0)))
        l.fail(str_cat(extra, " must be one positive finite number"));
    }
  if (in % 32 != 0) l.fail(str_cat(in, " input columns are not whole 32-element blocks"));
  std::vector<float> d(size_t(per_row ? out : 1));
  for (size_t r = 0; r < d.size(); ++r)
    if (d[r] = float_at(scale, int64_t(r)); !std::isfinite(d[r])) l.fail(str_cat("weight_scale holds ", d[r], " at index ", r));
  const auto* q = static_cast<const uint8_t*>(wt.data);
  std::atomic<int64_t> first_nan{out * in};
  l.put(w, DType::fp8, {out, in}, [&](uint8_t* dst) {
    auto* blocks = reinterpret_cast<Fp8Block*>(dst);
    pool.parallel_for(out, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t b = 0; b < in / 32; ++b) {
          Fp8Block& blk = blocks[r * (in / 32) + b];
          blk.d = d[per_row ? size_t(r) : 0];
          std::memcpy(blk.q, q + r * in + b * 32, 32);
          for (int i = 0; i < 32; ++i)
            if ((blk.q[i] & 0x7f) == 0x7f) atomic_min(first_nan, r * in + b * 32 + i);
        }
    });
  });
  if (const int64_t i = first_nan.load(); i < out * in) l.fail(str_cat("weight holds NaN at row ", i / in, ", column ", i % in));
}

// A group's scale as the block's f16: exact for F16 scales (AWQ's and GPTQ's own), and for others
// whose values F16 holds exactly.
uint16_t block_scale(const Layer& l, const TensorView& scales, int64_t i) {
  const float v = float_at(scales, i);
  const uint16_t h = f32_to_f16(v);
  if (!std::isfinite(v) || f16_to_f32(h) != v)
    l.fail(str_cat("scales holds ", v, " at index ", i, ", which is not a finite F16 value"));
  return h;
}

// A 4-bit checkpoint's weight, column-major in its own packing, as INT4 blocks: value(k, o),
// zero(g, o) and the scales [groups, out] give element (o, k) = (value - zero) * scale, k in group
// group_of(k). `order`, when not null, is the stored column order (act order).
template <typename Value, typename Zero, typename GroupOf>
TensorView& put_int4(Layer& l, HostWeights& w, ThreadPool& pool, int64_t out, int64_t in, const TensorView& scales,
                     Value value, Zero zero, GroupOf group_of, const std::vector<int32_t>* order) {
  if (in % 32 != 0) l.fail(str_cat(in, " input columns are not whole 32-element blocks"));
  const int64_t nb = in / 32;
  auto col = [&](int64_t j) { return order ? int64_t((*order)[size_t(j)]) : j; };
  std::vector<int64_t> block_group(static_cast<size_t>(nb));
  for (int64_t b = 0; b < nb; ++b) {
    block_group[size_t(b)] = group_of(col(b * 32));
    for (int i = 1; i < 32; ++i)
      if (group_of(col(b * 32 + i)) != block_group[size_t(b)])
        l.fail(str_cat("columns ", b * 32, "..", b * 32 + 31, " (in stored order) span several quantization groups; ",
                       "herd needs each group to be whole 32-column blocks"));
  }
  const int64_t groups = scales.shape[0];
  std::vector<uint16_t> d(static_cast<size_t>(groups * out));
  for (int64_t i = 0; i < groups * out; ++i) d[size_t(i)] = block_scale(l, scales, i);
  // Threads take 128 outputs at a time: AWQ packs 8 outputs per int32, so that is whole cache lines
  // of its transposed words; GPTQ's rows of outputs are contiguous anyway.
  constexpr int64_t kChunk = 128;
  return l.put(w, DType::int4, {out, in}, [&](uint8_t* dst) {
    auto* blocks = reinterpret_cast<Int4Block*>(dst);
    pool.parallel_for((out + kChunk - 1) / kChunk, [&](int64_t c0, int64_t c1) {
      int64_t cols[32];
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t g = block_group[size_t(b)];
        for (int i = 0; i < 32; ++i) cols[i] = col(b * 32 + i);
        for (int64_t o = c0 * kChunk; o < std::min(out, c1 * kChunk); ++o) {
          Int4Block& blk = blocks[o * nb + b];
          blk.d = d[size_t(g * out + o)];
          blk.z = uint8_t(zero(g, o));
          blk.pad = 0;
          for (int i = 0; i < 16; ++i) blk.qs[i] = uint8_t(value(cols[i], o) | (value(cols[i + 16], o) << 4));
        }
      }
    });
  });
}

// AWQ's GEMM packing: qweight I32 [in, out / 8], qzeros I32 [in / group, out / 8], scales [in / group,
// out]; the 8 nibbles of each int32, lowest first, hold output columns 0, 2, 4, 6, 1, 3, 5, 7 of its 8.
void convert_awq(Layer& l, HostWeights& w, const Scheme& s, ThreadPool& pool) {
  static constexpr int kNibbleOf[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // output column c % 8 -> nibble
  const TensorView qw = *l.take("qweight", true, "");
  l.check_dtype(qw, "qweight", qw.dtype == DType::i32, "I32");
  HERD_REQUIRE(qw.shape.size() == 2, l.file(), ": tensor \"", l.prefix(), ".qweight\" must be [in, out / 8]");
  const int64_t in = qw.shape[0], out = qw.shape[1] * 8;
  if (in % s.group != 0) l.fail(str_cat(in, " input columns are not whole groups of ", s.group));
  const int64_t groups = in / s.group;
  const TensorView scales = *l.take("scales", true, "the scales of an AWQ weight");
  l.check_dtype(scales, "scales", is_float(scales.dtype), "F16, BF16 or F32");
  l.check_shape(scales, "scales", {groups, out}, "qweight with the group size");
  std::optional<TensorView> qz = s.zero_point ? l.take("qzeros", true, "the zero points of an AWQ weight") : std::nullopt;
  if (qz) {
    l.check_dtype(*qz, "qzeros", qz->dtype == DType::i32, "I32");
    l.check_shape(*qz, "qzeros", {groups, out / 8}, "qweight with the group size");
  }
  auto nibble = [](int32_t word, int64_t col) { return (uint32_t(word) >> (4 * kNibbleOf[col % 8])) & 0xF; };
  put_int4(
      l, w, pool, out, in, scales, [&](int64_t k, int64_t o) { return nibble(i32_at(qw, k * (out / 8) + o / 8), o); },
      [&](int64_t g, int64_t o) { return qz ? nibble(i32_at(*qz, g * (out / 8) + o / 8), o) : 8u; },
      [&](int64_t k) { return k / s.group; }, nullptr);
}

// GPTQ: qweight I32 [in / 8, out] (8 input rows per int32, lowest nibble first), qzeros I32
// [groups, out / 8] (8 output columns per int32, in order), scales [groups, out], and g_idx I32 [in]
// (column k's group; without it k / group). Act order makes g_idx a permutation of the groups: the
// columns are then stored sorted by group, and the weight carries that order (col_perm).
void convert_gptq(Layer& l, HostWeights& w, const Scheme& s, ThreadPool& pool) {
  const TensorView qw = *l.take("qweight", true, "");
  l.check_dtype(qw, "qweight", qw.dtype == DType::i32, "I32");
  HERD_REQUIRE(qw.shape.size() == 2, l.file(), ": tensor \"", l.prefix(), ".qweight\" must be [in / 8, out]");
  const int64_t in = qw.shape[0] * 8, out = qw.shape[1];
  const int64_t group = s.group ? s.group : in;
  const TensorView scales = *l.take("scales", true, "the scales of a GPTQ weight");
  l.check_dtype(scales, "scales", is_float(scales.dtype), "F16, BF16 or F32");
  const int64_t groups = (in + group - 1) / group;
  l.check_shape(scales, "scales", {groups, out}, "qweight with the group size");
  const TensorView qz = *l.take("qzeros", true, "the zero points of a GPTQ weight");
  l.check_dtype(qz, "qzeros", qz.dtype == DType::i32, "I32");
  if (out % 8 != 0) l.fail(str_cat(out, " output columns are not whole int32 words of zero points"));
  l.check_shape(qz, "qzeros", {groups, out / 8}, "qweight with the group size");

  std::vector<int32_t> g_idx(static_cast<size_t>(in));
  if (std::optional<TensorView> gi = l.take("g_idx", false, "")) {
    l.check_dtype(*gi, "g_idx", gi->dtype == DType::i32, "I32");
    l.check_shape(*gi, "g_idx", {in}, "qweight");
    for (int64_t k = 0; k < in; ++k) {
      g_idx[size_t(k)] = i32_at(*gi, k);
      if (g_idx[size_t(k)] < 0 || g_idx[size_t(k)] >= groups)
        l.fail(str_cat("g_idx[", k, "] is ", g_idx[size_t(k)], ", not a group in [0, ", groups, ")"));
    }
  } else {
    for (int64_t k = 0; k < in; ++k) g_idx[size_t(k)] = int32_t(k / group);
  }
  std::vector<int32_t> order(static_cast<size_t>(in));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return g_idx[size_t(a)] < g_idx[size_t(b)]; });
  const bool act_order = !std::is_sorted(g_idx.begin(), g_idx.end());

  const uint32_t zero_offset = s.zeros_minus_one ? 1 : 0;
  TensorView& v = put_int4(
      l, w, pool, out, in, scales,
      [&](int64_t k, int64_t o) { return (uint32_t(i32_at(qw, (k / 8) * out + o)) >> (4 * (k % 8))) & 0xF; },
      [&](int64_t g, int64_t o) {
        // As AutoGPTQ reads them: a zero point of 0, stored as -1, wraps back to 0.
        return (((uint32_t(i32_at(qz, g * (out / 8) + o / 8)) >> (4 * (o % 8))) & 0xF) + zero_offset) & 0xF;
      },
      [&](int64_t k) { return int64_t(g_idx[size_t(k)]); }, act_order ? &order : nullptr);
  if (act_order) {
    std::vector<uint8_t>& perm = w.owned.emplace_back(order.size() * 4);
    std::memcpy(perm.data(), order.data(), perm.size());
    v.col_perm = reinterpret_cast<const int32_t*>(perm.data());
  }
}

}  // namespace

std::optional<CheckpointQuant> read_checkpoint_quant(const std::string& config_json) {
  const std::optional<json> cfg = parse_json_limited(read_text_file(config_json), config_json);
  if (!cfg || !cfg->is_object()) return std::nullopt;  // the config reader reports a bad config.json
  auto it = cfg->find("quantization_config");
  if (it == cfg->end() || it->is_null()) return std::nullopt;
  HERD_REQUIRE(it->is_object(), config_json, ": quantization_config must be an object");
  return ConfigReader(*it, config_json).read();
}

void convert_quantized_checkpoint(const CheckpointQuant& s, TensorsByName& by_name, HostWeights& w) {
  ThreadPool pool(0);  // the conversion reads and writes every weight once: all cores
  std::vector<std::string> prefixes;
  for (const auto& [name, entry] : by_name) {
    if (s.method == Method::fp8 && name.ends_with(".weight") && entry.first.dtype == DType::f8_e4m3)
      prefixes.push_back(name.substr(0, name.size() - 7));
    if (s.method != Method::fp8 && name.ends_with(".qweight")) prefixes.push_back(name.substr(0, name.size() - 8));
  }
  for (const std::string& prefix : prefixes) {
    Layer l(by_name, prefix, s.method == Method::fp8 ? "weight" : "qweight");
    switch (s.method) {
      case Method::fp8: convert_fp8(l, w, pool); break;
      case Method::awq: convert_awq(l, w, s, pool); break;
      case Method::gptq: convert_gptq(l, w, s, pool); break;
    }
  }
}

}  // namespace herd
