// herd quantize (include/herd/quantize.h): the arithmetic of each format against hand-worked values,
// a random model written in every format and loaded back by herd (logits near the BF16 model's, and
// every quantized weight dequantized by the loader to exactly what the quantizer computed), sharded
// safetensors, and every refusal (an existing output, a quantized or missing input, a group size
// that does not fit, a GGUF without Llama 3's tokenizer), none of which leaves anything behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "common/gguf-file.h"
#include "common/quant.h"
#include "herd/herd.h"
#include "model/model-dir.h"
#include "model/quantize-blocks.h"
#include "model/safetensors-writer.h"
#include "model/safetensors.h"
#include "model/synthetic.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// --- the arithmetic, worked by hand

TEST(QuantizeBlocks, Fp8RowRoundsTheQuotientToTheModelTypeFirst) {
  // BF16 row: absmax 2, scale bf16(2 / 448) = 1.140625 * 2^-8. 2 / scale = 448.88 -> bf16 448 -> E4M3
  // 448 (0x7E); 1 / scale = 224.44 -> bf16 224 -> 0x76; 0.5 -> 112 -> 0x6E.
  const float x[4] = {1.0f, -2.0f, 0.5f, 0.0f};
  uint8_t q[4];
  const float s = herd::quantize_fp8_row(herd::DType::bf16, x, 4, q);
  EXPECT_EQ(s, 1.140625f / 256.f);
  EXPECT_EQ(q[0], 0x76);
  EXPECT_EQ(q[1], 0xFE);
  EXPECT_EQ(q[2], 0x6E);
  EXPECT_EQ(q[3], 0x00);
  // An all-zero row takes the type's machine epsilon as its scale (compressed-tensors).
  const float z[2] = {0.f, 0.f};
  EXPECT_EQ(herd::quantize_fp8_row(herd::DType::bf16, z, 2, q), 0.0078125f);
  EXPECT_EQ(herd::quantize_fp8_row(herd::DType::f16, z, 2, q), 0.0009765625f);
}

TEST(QuantizeBlocks, AwqGroupIsAsymmetricWithAZeroPoint) {
  // max - min = 3: scale f16(0.2) = 0.199951171875; zero round(1 / scale) = 5;
  // codes round(x / scale) + 5: -5.0012 -> 0, 0 -> 5, 2.5006 -> 8, 10.002 -> 15.
  const float x[4] = {-1.0f, 0.0f, 0.5f, 2.0f};
  uint8_t q[4];
  const herd::Int4Group g = herd::quantize_awq_group(x, 4, q);
  EXPECT_EQ(herd::f16_to_f32(g.scale), 0.199951171875f);
  EXPECT_EQ(g.zero, 5);
  EXPECT_EQ(std::vector<int>(q, q + 4), (std::vector<int>{0, 5, 8, 15}));
}

TEST(QuantizeBlocks, GptqGroupIsSymmetricAroundEight) {
  // m = 1: scale f16(2 / 15) = 0.13330078125; codes round(x / scale) + 8: -7.502 -> 0, 1.876 -> 10,
  // 3.751 -> 12, 5.626 -> 14.
  const float x[4] = {-1.0f, 0.25f, 0.5f, 0.75f};
  uint8_t q[4];
  const herd::Int4Group g = herd::quantize_gptq_group(x, 4, q);
  EXPECT_EQ(herd::f16_to_f32(g.scale), 0.13330078125f);
  EXPECT_EQ(g.zero, 8);
  EXPECT_EQ(std::vector<int>(q, q + 4), (std::vector<int>{0, 10, 12, 14}));
  // No negative element: the grid runs from 0 to m (scale m / 15), still around 8.
  const float p[2] = {0.0f, 1.5f};
  EXPECT_EQ(herd::f16_to_f32(herd::quantize_gptq_group(p, 2, q).scale), herd::f16_to_f32(herd::f32_to_f16(0.1f)));
}

TEST(QuantizeBlocks, GgmlBlocksDequantizeWithinHalfAStep) {
  std::vector<float> x(256);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i) * 0.37f) * (1.0f + float(i % 7));
  using herd::DType;
  for (DType t : {DType::q8_0, DType::q4_0, DType::q4_1, DType::q4_k, DType::q5_k, DType::q6_k}) {
    std::vector<uint8_t> b(herd::dtype_nbytes(t, 256));
    herd::quantize_ggml_row(t, x.data(), 256, b.data());
    std::vector<float> y(256);
    herd::dequantize_row(t, b.data(), y.data(), 256);
    // Per block of 32, the grid's step: amax / 127 (Q8_0), amax / 8 (Q4_0: -8 .. 7 steps, so the end
    // opposite the largest element clamps a whole step short), (max - min) / 15 (Q4_1), about
    // amax / 32 (Q6_K), (max - min(min, 0)) / 15 (Q4_K) or / 31 (Q5_K); the K-quants' searches may
    // trade a little of the largest error for less squared error.
    // Round to nearest keeps the rest within half a step, plus the f16 rounding of the scale.
    for (int blk = 0; blk < 8; ++blk) {
      float lo = 1e30f, hi = -1e30f, err = 0.f;
      for (int i = blk * 32; i < blk * 32 + 32; ++i) {
        lo = std::min(lo, x[size_t(i)]), hi = std::max(hi, x[size_t(i)]);
        err = std::max(err, std::fabs(x[size_t(i)] - y[size_t(i)]));
      }
      const float amax = std::max(-lo, hi);
      const float bound = t == herd::DType::q8_0   ? 0.51f * amax / 127.f
                          : t == herd::DType::q4_0 ? 1.01f * amax / 8.f
                          : t == herd::DType::q4_1 ? 0.51f * (hi - lo) / 15.f
                          : t == herd::DType::q4_k ? 1.0f * (hi - std::min(lo, 0.f)) / 15.f
                          : t == herd::DType::q5_k ? 1.0f * (hi - std::min(lo, 0.f)) / 31.f
                                                   : 1.0f * amax / 32.f;
      EXPECT_LE(err, bound) << herd::dtype_name(t) << " block " << blk;
    }
  }
}

// Root mean square of x - y.
float rms_error(const std::vector<float>& x, const std::vector<float>& y) {
  double sum = 0;
  for (size_t i = 0; i < x.size(); ++i) sum += double(x[i] - y[i]) * double(x[i] - y[i]);
  return float(std::sqrt(sum / double(x.size())));
}

TEST(QuantizeBlocks, KQuantRandomRowsRoundTrip) {
  // 64 blocks of Gaussian weights, each block its own standard deviation (0.05 to 20: smaller ones
  // give F16 block scales below F16's normal range, where the grid is coarser than its 6-bit
  // scales say), a third of them shifted mostly positive: every element within a step of its
  // block's grid, and Q5_K's fifth bit about halving Q4_K's error.
  using herd::DType;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.f, 1.f);
  constexpr int64_t n = 64 * 256;
  std::vector<float> x(n);
  for (int64_t b = 0; b < n / 256; ++b) {
    const float scale = 0.05f * std::pow(400.f, float(b) / float(n / 256 - 1));
    const float shift = b % 3 == 0 ? 2.f * scale : 0.f;
    for (int64_t i = 256 * b; i < 256 * (b + 1); ++i) x[size_t(i)] = scale * normal(rng) + shift;
  }
  float rms[2] = {};
  for (DType t : {DType::q4_k, DType::q5_k, DType::q6_k}) {
    std::vector<uint8_t> q(herd::dtype_nbytes(t, n));
    herd::quantize_ggml_row(t, x.data(), n, q.data());
    std::vector<float> y(n);
    herd::dequantize_row(t, q.data(), y.data(), n);
    for (int64_t b = 0; b < n / 256; ++b) {
      float lo = 1e30f, hi = -1e30f, err = 0.f;
      for (int64_t i = 256 * b; i < 256 * (b + 1); ++i) {
        lo = std::min(lo, x[size_t(i)]), hi = std::max(hi, x[size_t(i)]);
        err = std::max(err, std::fabs(x[size_t(i)] - y[size_t(i)]));
      }
      // Q4_K, Q5_K: a step of the widest sub-block's grid (0 .. 15 or 31 steps over max - min(min,
      // 0)), plus half a step of the 6-bit mins; Q6_K: a step of -32 .. 31 over the largest magnitude.
      const float range = hi - std::min(lo, 0.f);
      const float bound = t == DType::q4_k   ? range / 15.f + range / 126.f
                          : t == DType::q5_k ? range / 31.f + range / 126.f
                                             : std::max(-lo, hi) / 32.f;
      EXPECT_LE(err, bound) << herd::dtype_name(t) << " block " << b;
    }
    if (t != DType::q6_k) rms[t == DType::q5_k] = rms_error(x, y);
  }
  EXPECT_LT(rms[1], 0.6f * rms[0]);
}

TEST(QuantizeBlocks, Q5KUsesItsFifthBitAndSurvivesEdgeBlocks) {
  // A ramp over 0..31 steps: codes of every value 0..31, the fifth bit of half of them in qh.
  std::vector<float> x(256);
  for (int i = 0; i < 256; ++i) x[size_t(i)] = float(i % 32) * 0.25f;
  std::vector<uint8_t> b(176);
  herd::quantize_ggml_row(herd::DType::q5_k, x.data(), 256, b.data());
  const herd::KBlock k = herd::unpack_k(herd::DType::q5_k, b.data());
  for (int i = 0; i < 256; ++i) EXPECT_EQ(k.q[i], i % 32) << i;
  std::vector<float> y(256);
  herd::dequantize_row(herd::DType::q5_k, b.data(), y.data(), 256);
  for (int i = 0; i < 256; ++i) EXPECT_NEAR(y[size_t(i)], x[size_t(i)], 2e-3f) << i;  // the F16 d
  // Constant blocks (zero, negative: all in the min; near F16's largest scale: all in the scale):
  // within half a step of the value, zero exactly.
  for (const float v : {0.f, -1.5f, 6e4f}) {
    const std::vector<float> e(256, v);
    herd::quantize_ggml_row(herd::DType::q5_k, e.data(), 256, b.data());
    herd::dequantize_row(herd::DType::q5_k, b.data(), y.data(), 256);
    for (int i = 0; i < 256; ++i) EXPECT_NEAR(y[size_t(i)], v, std::fabs(v) / 62.f) << v << " at " << i;
  }
  // One spike among zeros: the spike within half a step, the zeros exact.
  std::vector<float> spike(256, 0.f);
  spike[77] = 5.f;
  herd::quantize_ggml_row(herd::DType::q5_k, spike.data(), 256, b.data());
  herd::dequantize_row(herd::DType::q5_k, b.data(), y.data(), 256);
  EXPECT_NEAR(y[77], 5.f, 5.f / 62.f);
  for (int i = 0; i < 256; ++i) EXPECT_TRUE(i == 77 || y[size_t(i)] == 0.f) << i;
}

// --- a random model in every format

fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("herd-quantize-" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d.parent_path());
  return d;
}

herd::ModelConfig small_config() {
  herd::ModelConfig c;
  c.n_vocab = 320;
  c.n_embd = 256;
  c.n_ff = 512;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_head_kv = 2;
  c.head_dim = 64;
  c.n_ctx_train = 4096;
  c.norm_eps = 1e-5f;
  c.rope_theta = 500000.f;
  c.rope_scaling = herd::RopeScaling{8.f, 1.f, 4.f, 64};
  c.bos_id = 256;
  c.eos_ids = {258};
  return c;
}

// A byte-level BPE tokenizer with Llama 3's pre-tokenizer: 256 byte tokens (byte 0xFF's place taken by
// " t", so there is one merge) and three special tokens; ids past them are unused.
void write_tokenizer(const fs::path& dir) {
  std::vector<std::string> bytes(256);
  int next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const uint32_t cp = printable ? uint32_t(b) : uint32_t(next++);
    std::string s;
    if (cp < 0x80) {
      s += char(cp);
    } else {
      s += char(0xC0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3F));
    }
    bytes[size_t(b)] = s;
  }
  const std::string space = bytes[0x20];
  bytes[255] = space + "t";
  json vocab = json::object();
  for (int i = 0; i < 256; ++i) vocab[bytes[size_t(i)]] = i;
  json added = json::array();
  for (const auto& [id, text] : {std::pair{256, "<|begin_of_text|>"}, {257, "<|end_of_text|>"}, {258, "<|eot_id|>"}})
    added.push_back({{"id", id}, {"content", text}, {"special", true}, {"normalized", false}});
  const std::string pattern =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const json bos = {{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}};
  const json tj = {
      {"added_tokens", added},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair",
         {bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, bos, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {space + " t"}}}}};
  std::ofstream(dir / "tokenizer.json") << tj.dump();
  std::ofstream(dir / "tokenizer_config.json")
      << json{{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|eot_id|>"}, {"chat_template", "{{ bos_token }}"}}
             .dump();
}

class QuantizeModel : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    src_ = new fs::path(scratch("src"));
    herd::write_synthetic_model(small_config(), herd::DType::bf16, 7, src_->string());
    write_tokenizer(*src_);
  }
  static void TearDownTestSuite() {
    fs::remove_all(src_->parent_path());
    delete src_;
  }
  static fs::path* src_;
};
fs::path* QuantizeModel::src_ = nullptr;

std::vector<float> logits(const fs::path& model, const std::vector<int32_t>& ids) {
  herd::ModelOptions o;
  o.device = "cpu";
  o.n_threads = 2;
  o.max_context = 64;
  o.exact = true;
  std::unique_ptr<herd::Model> m;
  const herd::Status s = herd::Model::load(model.string(), o, &m);
  EXPECT_TRUE(s.is_ok()) << s.message();
  std::vector<float> out;
  if (m) {
    EXPECT_TRUE(m->logits(ids, true, &out).is_ok());
  }
  return out;
}

// max |a - b| / max |b|.
float relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  float d = 0.f, scale = 0.f;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::fabs(a[i] - b[i]));
    scale = std::max(scale, std::fabs(b[i]));
  }
  return d / scale;
}

herd::Status quantize(const fs::path& in, const fs::path& out, herd::QuantType t, int64_t group = 128) {
  herd::QuantizeOptions o;
  o.type = t;
  o.group_size = group;
  o.n_threads = 2;
  return herd::quantize_model(in.string(), out.string(), o);
}

// The row a quantizer makes of source row r, dequantized: what herd's loader must give back.
std::vector<float> expected_row(herd::QuantType t, const herd::TensorView& src, int64_t r, int64_t group,
                                herd::DType gguf_type) {
  const int64_t cols = src.shape[1];
  std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(cols));
  herd::dequantize_row(src.dtype, static_cast<const uint8_t*>(src.data) + herd::dtype_nbytes(src.dtype, r * cols),
                       x.data(), cols);
  std::vector<uint8_t> q(static_cast<size_t>(cols));
  switch (t) {
    case herd::QuantType::fp8: {
      const float s = herd::quantize_fp8_row(src.dtype, x.data(), cols, q.data());
      for (int64_t i = 0; i < cols; ++i) y[size_t(i)] = s * herd::e4m3_to_f32(q[size_t(i)]);
      break;
    }
    case herd::QuantType::awq:
    case herd::QuantType::gptq:
      for (int64_t g = 0; g < cols / group; ++g) {
        const herd::Int4Group qg = t == herd::QuantType::awq
                                       ? herd::quantize_awq_group(x.data() + g * group, group, q.data() + g * group)
                                       : herd::quantize_gptq_group(x.data() + g * group, group, q.data() + g * group);
        const float s = herd::f16_to_f32(qg.scale);
        for (int64_t i = g * group; i < (g + 1) * group; ++i)
          y[size_t(i)] = s * float(int(q[size_t(i)]) - int(qg.zero));
      }
      break;
    default: {
      // GGUF: the type the file gives this matrix (Q4_K_M mixes Q4_K and Q6_K; which where is
      // llama-quantize's choice, checked against its files in tests/golden/test-quantize-reference.cpp).
      const herd::DType d = gguf_type;
      std::vector<uint8_t> b(herd::dtype_nbytes(d, cols));
      herd::quantize_ggml_row(d, x.data(), cols, b.data());
      herd::dequantize_row(d, b.data(), y.data(), cols);
    }
  }
  return y;
}

// Every decoder projection of `out`, as herd loads it, against the quantizer run on `src`'s rows.
void expect_loaded_weights(herd::QuantType t, const fs::path& src, const fs::path& out, int64_t group) {
  const herd::ModelFiles a = herd::load_model_files(src.string());
  const herd::ModelFiles b = herd::load_model_files(out.string());
  int64_t compared = 0;
  for (size_t l = 0; l < a.weights.layers.size(); ++l) {
    const herd::LayerWeights& la = a.weights.layers[l];
    const herd::LayerWeights& lb = b.weights.layers[l];
    for (auto [wa, wb] : {std::pair{&la.wq, &lb.wq}, {&la.wk, &lb.wk}, {&la.wv, &lb.wv}, {&la.wo, &lb.wo},
                          {&la.w_gate, &lb.w_gate}, {&la.w_up, &lb.w_up}, {&la.w_down, &lb.w_down}}) {
      ASSERT_EQ(wa->shape, wb->shape);
      const int64_t cols = wa->shape[1];
      std::vector<float> got(static_cast<size_t>(cols));
      for (int64_t r = 0; r < wa->shape[0]; ++r) {
        herd::dequantize_row(wb->dtype, static_cast<const uint8_t*>(wb->data) + herd::dtype_nbytes(wb->dtype, r * cols),
                             got.data(), cols);
        const std::vector<float> want = expected_row(t, *wa, r, group, wb->dtype);
        ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4))
            << herd::quant_type_name(t) << " layer " << l << " row " << r;
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 2 * (256 + 128 + 128 + 256 + 512 + 512 + 256));
}

struct Case {
  herd::QuantType type;
  const char* out;
  float max_logit_error;  // of the logits' scale, exact CPU path
};

class QuantizeFormats : public QuantizeModel, public testing::WithParamInterface<Case> {};

TEST_P(QuantizeFormats, LoadsBackNearTheModelWithExactlyTheQuantizedWeights) {
  const Case& c = GetParam();
  const fs::path out = src_->parent_path() / c.out;
  fs::remove_all(out);
  const herd::Status s = quantize(*src_, out, c.type);
  ASSERT_TRUE(s.is_ok()) << s.message();
  std::vector<int32_t> ids(24);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 37 + 11) % 256);
  const std::vector<float> ref = logits(*src_, ids), got = logits(out, ids);
  ASSERT_EQ(ref.size(), got.size());
  const float err = relative_error(got, ref);
  std::printf("%s: logits differ from the BF16 model's by %.4f of their scale\n", c.out, err);
  EXPECT_LT(err, c.max_logit_error);
  EXPECT_GT(err, 0.f);  // the weights did change
  expect_loaded_weights(c.type, *src_, out, 128);
}

INSTANTIATE_TEST_SUITE_P(All, QuantizeFormats,
                         testing::Values(Case{herd::QuantType::fp8, "fp8", 0.01f},
                                         Case{herd::QuantType::awq, "awq", 0.03f},
                                         Case{herd::QuantType::gptq, "gptq", 0.03f},
                                         Case{herd::QuantType::q8_0, "q8_0.gguf", 0.015f},
                                         Case{herd::QuantType::q4_0, "q4_0.gguf", 0.12f},
                                         Case{herd::QuantType::q4_1, "q4_1.gguf", 0.12f},
                                         Case{herd::QuantType::q4_k_m, "q4_k_m.gguf", 0.08f},
                                         Case{herd::QuantType::q5_k_m, "q5_k_m.gguf", 0.04f},
                                         Case{herd::QuantType::q6_k, "q6_k.gguf", 0.03f}),
                         [](const testing::TestParamInfo<Case>& i) { return herd::quant_type_name(i.param.type); });

TEST_F(QuantizeModel, GgufCarriesTheTokenizerAndLlama3Scaling) {
  const fs::path out = src_->parent_path() / "tok.gguf";
  fs::remove_all(out);
  ASSERT_TRUE(quantize(*src_, out, herd::QuantType::q8_0).is_ok());
  herd::GgufFile f(out.string());
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "llama-bpe");
  EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id"), 256);
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id"), 258);
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(f.get_int("general.file_type"), 7);
  const auto types = f.get_ints("tokenizer.ggml.token_type");
  ASSERT_TRUE(types && types->size() == 320);
  EXPECT_EQ((*types)[65], 1);   // a byte: normal
  EXPECT_EQ((*types)[256], 3);  // <|begin_of_text|>: control
  EXPECT_EQ((*types)[300], 5);  // no token: unused ("[PAD300]")
  EXPECT_EQ((*f.get_strings("tokenizer.ggml.tokens"))[300], "[PAD300]");
  EXPECT_EQ(f.get_strings("tokenizer.ggml.merges")->size(), 1u);
  // llama3 scaling as one divisor per frequency: 1 for short wavelengths, the factor for long ones.
  const herd::GgufTensorInfo* rope = f.tensor("rope_freqs.weight");
  ASSERT_TRUE(rope && rope->shape == herd::Shape{32});
  const auto* fr = static_cast<const float*>(rope->data);
  EXPECT_EQ(fr[0], 1.f);
  EXPECT_EQ(fr[31], 8.f);
  // Norms stay F32; the untied 256-wide LM head of a Q8_0 file is Q8_0.
  EXPECT_EQ(f.tensor("blk.0.attn_norm.weight")->dtype, herd::DType::f32);
  EXPECT_EQ(f.tensor("output.weight")->dtype, herd::DType::q8_0);
  // herd reads its own tokenizer from the file.
  std::unique_ptr<herd::Tokenizer> tok;
  ASSERT_TRUE(herd::Tokenizer::load(out.string(), &tok).is_ok());
}

TEST_F(QuantizeModel, Q4OutputIsQ6K) {
  const fs::path out = src_->parent_path() / "q6k.gguf";
  fs::remove_all(out);
  ASSERT_TRUE(quantize(*src_, out, herd::QuantType::q4_0).is_ok());
  herd::GgufFile f(out.string());
  EXPECT_EQ(f.tensor("output.weight")->dtype, herd::DType::q6_k);
  EXPECT_EQ(f.tensor("token_embd.weight")->dtype, herd::DType::q4_0);
  EXPECT_EQ(f.tensor("blk.1.ffn_down.weight")->dtype, herd::DType::q4_0);
}

TEST_F(QuantizeModel, CheckpointConfigsAndCopiedFiles) {
  const fs::path fp8 = src_->parent_path() / "cfg-fp8", gptq = src_->parent_path() / "cfg-gptq";
  fs::remove_all(fp8);
  fs::remove_all(gptq);
  ASSERT_TRUE(quantize(*src_, fp8, herd::QuantType::fp8).is_ok());
  ASSERT_TRUE(quantize(*src_, gptq, herd::QuantType::gptq, 64).is_ok());
  json c;
  std::ifstream(fp8 / "config.json") >> c;
  const json& qc = c["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "compressed-tensors");
  EXPECT_EQ(qc["format"], "float-quantized");
  EXPECT_EQ(qc["ignore"], json::array({"lm_head"}));
  EXPECT_EQ(qc["config_groups"]["group_0"]["weights"]["strategy"], "channel");
  EXPECT_EQ(qc["config_groups"]["group_0"]["input_activations"]["strategy"], "token");
  EXPECT_EQ(c["hidden_size"], 256);  // the rest of config.json as it was
  EXPECT_TRUE(fs::exists(fp8 / "tokenizer.json") && fs::exists(fp8 / "tokenizer_config.json"));
  herd::SafetensorsFile st((fp8 / "model.safetensors").string());
  for (const auto& e : st.header().tensors)
    if (e.name == "model.layers.0.self_attn.q_proj.weight_scale") {
      EXPECT_EQ(e.dtype, herd::DType::bf16);
      EXPECT_EQ(e.shape, (herd::Shape{256, 1}));
    }
  std::ifstream(gptq / "config.json") >> c;
  EXPECT_EQ(c["quantization_config"]["checkpoint_format"], "gptq");
  EXPECT_EQ(c["quantization_config"]["group_size"], 64);
  EXPECT_EQ(c["quantization_config"]["sym"], true);
  EXPECT_EQ(c["quantization_config"]["desc_act"], false);
  EXPECT_TRUE(fs::exists(gptq / "quantize_config.json"));
  // Group 64: the loaded weights are the quantizer's, group by group.
  expect_loaded_weights(herd::QuantType::gptq, *src_, gptq, 64);
}

// --- refusals: one line naming what and why, and nothing left at the output or beside it

void expect_nothing_left(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".partial-"), std::string::npos) << e.path();
}

TEST_F(QuantizeModel, Refusals) {
  const fs::path base = src_->parent_path();
  // An existing output, file or directory, is never touched.
  const fs::path existing = base / "existing";
  fs::create_directories(existing);
  herd::Status s = quantize(*src_, existing, herd::QuantType::fp8);
  EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
  EXPECT_NE(s.message().find("already exists"), std::string::npos) << s.message();
  EXPECT_TRUE(fs::is_empty(existing));
  // A missing input.
  s = quantize(base / "nope", base / "x", herd::QuantType::fp8);
  EXPECT_EQ(s.code(), herd::Status::Code::not_found) << s.message();
  // An already quantized input.
  const fs::path fp8 = base / "twice-src";
  fs::remove_all(fp8);
  ASSERT_TRUE(quantize(*src_, fp8, herd::QuantType::fp8).is_ok());
  s = quantize(fp8, base / "twice", herd::QuantType::awq);
  EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
  EXPECT_NE(s.message().find("already quantized"), std::string::npos) << s.message();
  // A group size that does not divide a layer's input width (256 and 512): named with the tensor.
  s = quantize(*src_, base / "g96", herd::QuantType::awq, 96);
  EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
  EXPECT_NE(s.message().find("not whole groups of 96"), std::string::npos) << s.message();
  s = quantize(*src_, base / "g48", herd::QuantType::gptq, 48);
  EXPECT_NE(s.message().find("multiple of 32"), std::string::npos) << s.message();
  // GGUF needs Llama 3's tokenizer.json.
  const fs::path bare = base / "bare";
  fs::remove_all(bare);
  fs::create_directories(bare);
  fs::copy_file(*src_ / "config.json", bare / "config.json");
  fs::copy_file(*src_ / "model.safetensors", bare / "model.safetensors");
  s = quantize(bare, base / "bare.gguf", herd::QuantType::q4_0);
  EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
  EXPECT_NE(s.message().find("tokenizer.json"), std::string::npos) << s.message();
  for (const char* out : {"x", "twice", "g96", "g48", "bare.gguf"}) EXPECT_FALSE(fs::exists(base / out)) << out;
  expect_nothing_left(base);
}

TEST(QuantizeGguf, KMixesRefuseRowsOfPartBlocks) {
  // Rows of 128 elements: llama-quantize stores what would be Q4_K as Q5_0 and Q5_K as Q5_1, types
  // herd does not read, so q4_k_m and q5_k_m are refused; Q6_K falls back to Q8_0, which herd reads.
  herd::ModelConfig c = small_config();
  c.n_embd = 128;
  c.n_head = 2;
  c.n_head_kv = 1;
  const fs::path src = scratch("narrow"), out = src.parent_path() / "narrow.gguf";
  herd::write_synthetic_model(c, herd::DType::bf16, 7, src.string());
  write_tokenizer(src);
  for (const auto& [type, fallback] : {std::pair{herd::QuantType::q4_k_m, "Q5_0"}, {herd::QuantType::q5_k_m, "Q5_1"}}) {
    const herd::Status s = quantize(src, out, type);
    EXPECT_EQ(s.code(), herd::Status::Code::invalid_input) << herd::quant_type_name(type);
    EXPECT_NE(s.message().find(std::string("would store it as ") + fallback), std::string::npos) << s.message();
    EXPECT_FALSE(fs::exists(out));
  }
  ASSERT_TRUE(quantize(src, out, herd::QuantType::q6_k).is_ok());
  EXPECT_EQ(herd::GgufFile(out.string()).tensor("blk.0.attn_q.weight")->dtype, herd::DType::q8_0);
  expect_nothing_left(src.parent_path());
  fs::remove_all(src);
  fs::remove(out);
}

TEST(QuantizeGguf, Q4KMGivesAttnVQ5KOnlyToGroupedKvHeadsAt80Layers) {
  // llama.cpp takes an 80-layer Llama for a 70B only when it has fewer KV heads than heads (with as
  // many it is a 65B): Q4_K_M's attn_v outside the use_more_bits layers (11 here) is Q5_K in the
  // first (tests/golden/test-quantize-reference.cpp, byte for byte) and Q4_K in the second.
  herd::ModelConfig c = small_config();
  c.n_layer = 80;
  c.n_ff = 256;
  c.n_head_kv = c.n_head;
  const fs::path src = scratch("mha80"), out = src.parent_path() / "mha80.gguf";
  herd::write_synthetic_model(c, herd::DType::bf16, 7, src.string());
  write_tokenizer(src);
  ASSERT_TRUE(quantize(src, out, herd::QuantType::q4_k_m).is_ok());
  const herd::GgufFile f(out.string());
  EXPECT_EQ(f.tensor("blk.11.attn_v.weight")->dtype, herd::DType::q4_k);
  EXPECT_EQ(f.tensor("blk.12.attn_v.weight")->dtype, herd::DType::q6_k);  // (12 - 80 / 8) % 3 == 2
  fs::remove_all(src);
  fs::remove(out);
}

// --- sharded safetensors

TEST(SafetensorsWriter, CutsFilesAndWritesTheIndex) {
  const fs::path d = scratch("shards");
  fs::create_directories(d);
  herd::SafetensorsWriter w(d.string(), 100);
  std::vector<float> a(20, 1.f), b(20, 2.f), c(4, 3.f);
  w.plan("a", herd::DType::f32, {20});
  w.plan("b", herd::DType::f32, {4, 5});
  w.plan("c", herd::DType::f32, {4});
  w.write(a.data(), 80);
  w.write(b.data(), 80);
  w.write(c.data(), 16);
  w.finish();
  json index;
  std::ifstream(d / "model.safetensors.index.json") >> index;
  EXPECT_EQ(index["metadata"]["total_size"], 176);
  EXPECT_EQ(index["weight_map"]["a"], "model-00001-of-00002.safetensors");
  EXPECT_EQ(index["weight_map"]["b"], "model-00002-of-00002.safetensors");
  EXPECT_EQ(index["weight_map"]["c"], "model-00002-of-00002.safetensors");
  herd::SafetensorsFile second((d / "model-00002-of-00002.safetensors").string());
  ASSERT_EQ(second.header().tensors.size(), 2u);
  for (const auto& e : second.header().tensors) {
    const auto* p = static_cast<const float*>(second.view(e).data);
    EXPECT_EQ(p[0], e.name == "b" ? 2.f : 3.f);
  }
  fs::remove_all(d);
}

}  // namespace
