// Quantized checkpoints' tensors converted into herd's FP8 and INT4 blocks (model/checkpoint-quant.h):
// random integers packed here the way each format's writer packs them (AutoAWQ's GEMM order,
// GPTQ's rows of eight, FP8 bytes with a scale per tensor or row) come back element for element
// from the converted weight; every unsupported setting and broken tensor is one error naming it.
// The whole-model proof against transformers is tests/golden/test-quantized-checkpoints.cpp.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "common/check.h"
#include "common/quant.h"
#include "model/checkpoint-quant.h"

namespace fs = std::filesystem;

namespace herd {
namespace {

// A stored tensor the test owns.
struct Owned {
  std::string name;
  DType dtype;
  Shape shape;
  std::vector<uint8_t> bytes;
};

template <typename T>
Owned owned(std::string name, DType dtype, Shape shape, const std::vector<T>& values) {
  Owned o{std::move(name), dtype, std::move(shape), {}};
  o.bytes.resize(values.size() * sizeof(T));
  std::memcpy(o.bytes.data(), values.data(), o.bytes.size());
  return o;
}

class CheckpointConvert : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("herd-ckpt-quant-" + std::to_string(::getpid()) + "-" +
                                        testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes config.json with `quant` as its quantization_config and the tensors, then converts.
  void convert(const std::string& quant, const std::vector<Owned>& tensors) {
    std::ofstream(dir_ / "config.json") << R"({"model_type": "llama", "quantization_config": )" << quant << "}";
    std::vector<NamedTensor> named;
    for (const Owned& t : tensors) named.push_back({t.name, TensorView{t.dtype, t.shape, t.bytes.data()}});
    write_safetensors((dir_ / "model.safetensors").string(), named);
    file_ = std::make_unique<SafetensorsFile>((dir_ / "model.safetensors").string());
    by_name_.clear();
    for (const auto& e : file_->header().tensors) by_name_.emplace(e.name, std::make_pair(file_->view(e), file_->path()));
    const std::optional<CheckpointQuant> q = read_checkpoint_quant((dir_ / "config.json").string());
    ASSERT_TRUE(q.has_value());
    convert_quantized_checkpoint(*q, by_name_, w_);
  }

  std::string error(const std::string& quant, const std::vector<Owned>& tensors) {
    try {
      convert(quant, tensors);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::invalid_input) << e.what();
      return e.what();
    }
    return "(no error)";
  }

  // Row r of a converted weight, dequantized.
  std::vector<float> row(const std::string& name, int64_t r) {
    const TensorView& v = by_name_.at(name).first;
    const int64_t k = v.shape[1];
    std::vector<float> out(static_cast<size_t>(k));
    dequantize_row(v.dtype, static_cast<const uint8_t*>(v.data) + dtype_nbytes(v.dtype, r * k), out.data(), k);
    return out;
  }

  fs::path dir_;
  std::unique_ptr<SafetensorsFile> file_;
  TensorsByName by_name_;
  HostWeights w_;
};

constexpr int64_t kOut = 16, kIn = 128;

// Random 4-bit values q[k][o], zero points z[g][o] and f16 scales s[g][o] of one weight.
struct Int4Weight {
  int64_t group;
  std::vector<uint8_t> q, z;    // [kIn][kOut], [groups][kOut]
  std::vector<uint16_t> s;      // f16, [groups][kOut]
  int64_t groups() const { return kIn / group; }
  float at(int64_t o, int64_t k, int64_t g) const {
    return f16_to_f32(s[size_t(g * kOut + o)]) * float(int(q[size_t(k * kOut + o)]) - int(z[size_t(g * kOut + o)]));
  }
};

Int4Weight random_int4(int64_t group, int zero_lo, int zero_hi, std::mt19937& rng) {
  Int4Weight w{group, {}, {}, {}};
  for (int64_t i = 0; i < kIn * kOut; ++i) w.q.push_back(uint8_t(rng() % 16));
  for (int64_t i = 0; i < w.groups() * kOut; ++i) {
    w.z.push_back(uint8_t(zero_lo + int(rng() % uint32_t(zero_hi - zero_lo + 1))));
    w.s.push_back(f32_to_f16(0.001f + 0.01f * float(rng() % 1000) / 1000.f));
  }
  return w;
}

// AutoAWQ's GEMM packing: eight output columns per int32, column c % 8 in nibble kNibble[c % 8].
std::vector<int32_t> awq_pack(const std::vector<uint8_t>& v, int64_t rows) {
  static constexpr int kNibble[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  std::vector<int32_t> out(size_t(rows * kOut / 8));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < kOut; ++c)
      out[size_t(r * kOut / 8 + c / 8)] |= int32_t(uint32_t(v[size_t(r * kOut + c)]) << (4 * kNibble[c % 8]));
  return out;
}

TEST_F(CheckpointConvert, AwqGemmPackingComesBackElementForElement) {
  std::mt19937 rng(1);
  const Int4Weight w = random_int4(32, 0, 15, rng);
  convert(R"({"quant_method": "awq", "bits": 4, "group_size": 32, "zero_point": true, "version": "GEMM"})",
          {owned("l.qweight", DType::i32, {kIn, kOut / 8}, awq_pack(w.q, kIn)),
           owned("l.qzeros", DType::i32, {w.groups(), kOut / 8}, awq_pack(w.z, w.groups())),
           owned("l.scales", DType::f16, {w.groups(), kOut}, w.s)});
  ASSERT_EQ(by_name_.size(), 1u);
  const TensorView& v = by_name_.at("l.weight").first;
  EXPECT_EQ(v.dtype, DType::int4);
  EXPECT_EQ(v.shape, (Shape{kOut, kIn}));
  EXPECT_EQ(v.col_perm, nullptr);
  for (int64_t o = 0; o < kOut; ++o) {
    const std::vector<float> r = row("l.weight", o);
    for (int64_t k = 0; k < kIn; ++k) ASSERT_EQ(r[size_t(k)], w.at(o, k, k / 32)) << o << "," << k;
  }
}

// GPTQ: eight consecutive input rows per int32 of qweight, eight output columns per int32 of qzeros.
std::vector<int32_t> gptq_pack_rows(const std::vector<uint8_t>& q) {
  std::vector<int32_t> out(size_t(kIn / 8 * kOut));
  for (int64_t k = 0; k < kIn; ++k)
    for (int64_t o = 0; o < kOut; ++o) out[size_t(k / 8 * kOut + o)] |= int32_t(uint32_t(q[size_t(k * kOut + o)]) << (4 * (k % 8)));
  return out;
}
std::vector<int32_t> gptq_pack_zeros(const std::vector<uint8_t>& z, int64_t groups, int minus) {
  std::vector<int32_t> out(size_t(groups * kOut / 8));
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t o = 0; o < kOut; ++o)
      out[size_t(g * kOut / 8 + o / 8)] |= int32_t((uint32_t(z[size_t(g * kOut + o)] - minus) & 0xF) << (4 * (o % 8)));
  return out;
}

TEST_F(CheckpointConvert, GptqOriginalFormatStoresZeroPointsMinusOne) {
  std::mt19937 rng(2);
  const Int4Weight w = random_int4(64, 0, 15, rng);  // stored minus one, mod 16: 0 is stored as 15
  std::vector<int32_t> g_idx(kIn);
  for (int64_t k = 0; k < kIn; ++k) g_idx[size_t(k)] = int32_t(k / 64);
  convert(R"({"quant_method": "gptq", "bits": 4, "group_size": 64, "desc_act": false, "sym": false})",
          {owned("l.qweight", DType::i32, {kIn / 8, kOut}, gptq_pack_rows(w.q)),
           owned("l.qzeros", DType::i32, {w.groups(), kOut / 8}, gptq_pack_zeros(w.z, w.groups(), 1)),
           owned("l.scales", DType::f16, {w.groups(), kOut}, w.s), owned("l.g_idx", DType::i32, {kIn}, g_idx)});
  EXPECT_EQ(by_name_.at("l.weight").first.col_perm, nullptr);
  for (int64_t o = 0; o < kOut; ++o) {
    const std::vector<float> r = row("l.weight", o);
    for (int64_t k = 0; k < kIn; ++k) ASSERT_EQ(r[size_t(k)], w.at(o, k, k / 64)) << o << "," << k;
  }
}

TEST_F(CheckpointConvert, GptqActOrderKeepsTheColumnOrder) {
  std::mt19937 rng(3);
  const Int4Weight w = random_int4(32, 0, 15, rng);
  // Act order: columns visited in order perm; the j-th visited column is in group j / 32.
  std::vector<int32_t> perm(kIn), g_idx(kIn);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  for (int64_t j = 0; j < kIn; ++j) g_idx[size_t(perm[size_t(j)])] = int32_t(j / 32);
  convert(R"({"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": true, "sym": false,
              "checkpoint_format": "gptq_v2"})",
          {owned("l.qweight", DType::i32, {kIn / 8, kOut}, gptq_pack_rows(w.q)),
           owned("l.qzeros", DType::i32, {w.groups(), kOut / 8}, gptq_pack_zeros(w.z, w.groups(), 0)),
           owned("l.scales", DType::f16, {w.groups(), kOut}, w.s), owned("l.g_idx", DType::i32, {kIn}, g_idx)});
  const TensorView& v = by_name_.at("l.weight").first;
  ASSERT_NE(v.col_perm, nullptr);
  std::vector<int32_t> seen(v.col_perm, v.col_perm + kIn);
  std::sort(seen.begin(), seen.end());
  for (int64_t k = 0; k < kIn; ++k) ASSERT_EQ(seen[size_t(k)], k) << "col_perm is a permutation";
  for (int64_t o = 0; o < kOut; ++o) {
    const std::vector<float> r = row("l.weight", o);
    for (int64_t j = 0; j < kIn; ++j) {
      const int64_t k = v.col_perm[j];
      ASSERT_EQ(r[size_t(j)], w.at(o, k, g_idx[size_t(k)])) << o << "," << j;
    }
  }
}

std::vector<uint8_t> random_e4m3(int64_t n, std::mt19937& rng) {
  std::vector<uint8_t> q;
  while (int64_t(q.size()) < n)
    if (const uint8_t b = uint8_t(rng()); (b & 0x7f) != 0x7f) q.push_back(b);
  return q;
}

TEST_F(CheckpointConvert, Fp8ScalesPerTensorAndPerRow) {
  std::mt19937 rng(4);
  const std::vector<uint8_t> q = random_e4m3(kOut * kIn, rng);
  std::vector<uint16_t> row_scales;  // BF16, as compressed-tensors writes them for a BF16 model
  for (int64_t o = 0; o < kOut; ++o) row_scales.push_back(f32_to_bf16(0.001f * float(o + 1)));
  convert(R"({"quant_method": "compressed-tensors", "format": "float-quantized", "config_groups": {"group_0": {
               "targets": ["Linear"], "weights": {"num_bits": 8, "type": "float", "strategy": "channel",
               "symmetric": true, "dynamic": false}, "input_activations": {"num_bits": 8, "type": "float",
               "strategy": "token", "dynamic": true}}}, "ignore": ["lm_head"]})",
          {owned("a.weight", DType::f8_e4m3, {kOut, kIn}, q), owned("a.weight_scale", DType::bf16, {kOut, 1}, row_scales),
           owned("b.weight", DType::f8_e4m3, {kOut, kIn}, q),
           owned("b.weight_scale", DType::f32, {1}, std::vector<float>{0.25f}),
           owned("b.input_scale", DType::f32, {1}, std::vector<float>{0.5f}),
           owned("lm_head.weight", DType::bf16, {kOut, kIn}, std::vector<uint16_t>(kOut * kIn))});
  ASSERT_EQ(by_name_.size(), 3u);
  EXPECT_EQ(by_name_.at("lm_head.weight").first.dtype, DType::bf16) << "an unquantized layer stays as it is";
  for (int64_t o = 0; o < kOut; ++o) {
    const std::vector<float> a = row("a.weight", o), b = row("b.weight", o);
    for (int64_t k = 0; k < kIn; ++k) {
      const float e = e4m3_to_f32(q[size_t(o * kIn + k)]);
      ASSERT_EQ(a[size_t(k)], bf16_to_f32(row_scales[size_t(o)]) * e);
      ASSERT_EQ(b[size_t(k)], 0.25f * e);
    }
  }
}

TEST_F(CheckpointConvert, FbgemmFp8) {
  std::mt19937 rng(5);
  const std::vector<uint8_t> q = random_e4m3(kOut * kIn, rng);
  std::vector<float> scales(kOut, 0.125f);
  convert(R"({"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0, "modules_to_not_convert": ["lm_head"]})",
          {owned("l.weight", DType::f8_e4m3, {kOut, kIn}, q), owned("l.weight_scale", DType::f32, {kOut, 1}, scales)});
  EXPECT_EQ(row("l.weight", 3)[7], 0.125f * e4m3_to_f32(q[size_t(3 * kIn + 7)]));
}

TEST_F(CheckpointConvert, UnsupportedSettingsAreNamed) {
  const std::vector<Owned> none;
  EXPECT_NE(error(R"({"quant_method": "bitsandbytes"})", none).find("quantization_config.quant_method is \"bitsandbytes\""),
            std::string::npos);
  EXPECT_NE(error(R"({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemv"})", none)
                .find("quantization_config.version is \"gemv\""),
            std::string::npos);
  EXPECT_NE(error(R"({"quant_method": "awq", "bits": 4, "group_size": 48})", none).find("quantization_config.group_size is 48"),
            std::string::npos);
  EXPECT_NE(error(R"({"quant_method": "gptq", "bits": 8, "group_size": 128})", none).find("quantization_config.bits is 8"),
            std::string::npos);
  EXPECT_NE(error(R"({"quant_method": "gptq", "bits": 4, "group_size": 128, "checkpoint_format": "marlin"})", none)
                .find("quantization_config.checkpoint_format is \"marlin\""),
            std::string::npos);
  EXPECT_NE(error(R"({"quant_method": "compressed-tensors", "format": "pack-quantized"})", none)
                .find("quantization_config.format is \"pack-quantized\""),
            std::string::npos);
  EXPECT_NE(error(R"({"quant_method": "compressed-tensors", "format": "float-quantized", "config_groups": {"g": {
                     "weights": {"num_bits": 8, "type": "float", "strategy": "block"}}}})",
                  none)
                .find("quantization_config.config_groups.g.weights.strategy is \"block\""),
            std::string::npos);
  // An FP8 KV cache scheme is read (test-quantized-checkpoints.cpp); an integer one is not.
  EXPECT_NE(error(R"({"quant_method": "compressed-tensors", "format": "float-quantized",
                     "kv_cache_scheme": {"num_bits": 8, "type": "int"}, "config_groups": {}})",
                  none)
                .find("quantization_config.kv_cache_scheme.type is \"int\""),
            std::string::npos);
  EXPECT_NE(error(R"({"quant_method": "compressed-tensors", "format": "float-quantized", "transform_config": {"r": 1},
                     "config_groups": {}})",
                  none)
                .find("quantization_config.transform_config is set"),
            std::string::npos);
  EXPECT_NE(error(R"({"quant_method": "fbgemm_fp8", "activation_scale_ub": "big"})", none).find("activation_scale_ub"),
            std::string::npos);
  EXPECT_NE(error(R"([1, 2])", none).find("quantization_config must be an object"), std::string::npos);
}

TEST_F(CheckpointConvert, BrokenTensorsAreNamed) {
  std::mt19937 rng(6);
  std::vector<uint8_t> q = random_e4m3(kOut * kIn, rng);
  q[size_t(5 * kIn + 9)] = 0xff;
  const std::string fp8 = R"({"quant_method": "fbgemm_fp8"})";
  EXPECT_NE(error(fp8, {owned("l.weight", DType::f8_e4m3, {kOut, kIn}, q),
                        owned("l.weight_scale", DType::f32, {kOut, 1}, std::vector<float>(kOut, 1.f))})
                .find("\"l\": weight holds NaN at row 5, column 9"),
            std::string::npos);
  EXPECT_NE(error(fp8, {owned("l.weight", DType::f8_e4m3, {kOut, kIn}, q)}).find("missing tensor \"l.weight_scale\""),
            std::string::npos);
  EXPECT_NE(error(fp8, {owned("l.weight", DType::f8_e4m3, {kOut, kIn}, q),
                        owned("l.weight_scale", DType::f32, {3}, std::vector<float>(3, 1.f))})
                .find("weight_scale has shape [3]"),
            std::string::npos);

  const Int4Weight w = random_int4(32, 0, 15, rng);
  std::vector<int32_t> g_idx(kIn, 0);
  g_idx[17] = 99;
  const std::string gptq = R"({"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": true})";
  auto gptq_tensors = [&](const std::vector<int32_t>& gi) {
    return std::vector<Owned>{owned("l.qweight", DType::i32, {kIn / 8, kOut}, gptq_pack_rows(w.q)),
                              owned("l.qzeros", DType::i32, {w.groups(), kOut / 8}, gptq_pack_zeros(w.z, w.groups(), 1)),
                              owned("l.scales", DType::f16, {w.groups(), kOut}, w.s), owned("l.g_idx", DType::i32, {kIn}, gi)};
  };
  EXPECT_NE(error(gptq, gptq_tensors(g_idx)).find("g_idx[17] is 99, not a group in [0, 4)"), std::string::npos);
  // Groups of 32 that are not whole 32-column blocks once sorted: 20 columns in group 0, 44 in 1, ...
  for (int64_t k = 0; k < kIn; ++k) g_idx[size_t(k)] = k < 20 ? 0 : k < 64 ? 1 : int32_t(k / 32);
  EXPECT_NE(error(gptq, gptq_tensors(g_idx)).find("span several quantization groups"), std::string::npos);
  std::vector<uint16_t> bad_scales = w.s;
  bad_scales[3] = 0x7c00;  // +inf
  EXPECT_NE(error(R"({"quant_method": "awq", "bits": 4, "group_size": 32})",
                  {owned("l.qweight", DType::i32, {kIn, kOut / 8}, awq_pack(w.q, kIn)),
                   owned("l.qzeros", DType::i32, {w.groups(), kOut / 8}, awq_pack(w.z, w.groups())),
                   owned("l.scales", DType::f16, {w.groups(), kOut}, bad_scales)})
                .find("scales holds inf at index 3"),
            std::string::npos);
  EXPECT_NE(error(R"({"quant_method": "awq", "bits": 4, "group_size": 32})",
                  {owned("l.qweight", DType::i32, {kIn, kOut / 8}, awq_pack(w.q, kIn)),
                   owned("l.scales", DType::f16, {w.groups(), kOut}, w.s)})
                .find("missing tensor \"l.qzeros\""),
            std::string::npos);
}

TEST(E4m3, EveryCodeRoundTripsAndKnownValues) {
  EXPECT_EQ(e4m3_to_f32(0x38), 1.f);
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.f);
  EXPECT_EQ(e4m3_to_f32(0xfe), -448.f);
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.f, -9));  // the smallest subnormal
  EXPECT_EQ(e4m3_to_f32(0x08), std::ldexp(1.f, -6));  // the smallest normal
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0x7f)) && std::isnan(e4m3_to_f32(0xff)));
  for (int c = 0; c < 256; ++c)
    if ((c & 0x7f) != 0x7f && c != 0x80) {
      EXPECT_EQ(f32_to_e4m3(e4m3_to_f32(uint8_t(c))), c) << c;
    }
  EXPECT_EQ(f32_to_e4m3(1e6f), 0x7e) << "saturates";
  EXPECT_EQ(f32_to_e4m3(1.0625f), 0x38) << "a tie between 1 and 1.125 goes to the even code";
  EXPECT_EQ(f32_to_e4m3(1.1875f), 0x3a) << "a tie between 1.125 and 1.25 goes to the even code";
}

}  // namespace
}  // namespace herd
