// herd quantize against the tools it imitates (tests/reference/make_quantize_fixtures.py):
//  - GGUF: a random model (made by herd's synthetic writer from a committed config and seed, with a
//    committed Llama 3-style tokenizer) converted by llama.cpp's convert_hf_to_gguf and quantized by
//    llama-quantize to Q8_0, Q4_0, Q4_1, Q4_K_M, Q5_K_M and Q6_K (untied: Q6_K or Q8_0 LM head; tied:
//    the embedding takes the LM head's type; Q4_K_M's and Q5_K_M's Q6_K attn_v and ffn_down). herd's
//    file must be the same file, byte for byte: every key and value in order, tensor names, types,
//    order and offsets, q/k rows, rope_freqs, every block.
//  - GGUF, 70B-shaped: 80 layers with grouped KV heads, where llama-quantize's Q4_K_M makes attn_v
//    Q5_K outside the use_more_bits layers; the file is too large to commit, so herd's must begin
//    with the reference's bytes up to the tensor data and have the whole reference's digest.
//  - FP8: a tiny model compressed by compressed-tensors itself (FP8_DYNAMIC): the same tensors, byte
//    for byte, and the same quantization_config.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "herd/herd.h"
#include "model/safetensors.h"

namespace fs = std::filesystem;

namespace {

const fs::path kRef = fs::path(HERD_TEST_DATA) / "quantize-ref";

std::string bytes_of(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

fs::path scratch() {
  const fs::path d = fs::temp_directory_path() / ("herd-quantize-ref-" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

herd::Status quantize(const fs::path& in, const fs::path& out, herd::QuantType t) {
  herd::QuantizeOptions o;
  o.type = t;
  o.n_threads = 2;
  return herd::quantize_model(in.string(), out.string(), o);
}

struct GgufCase {
  const char* model;   // the directory name, which the converter turns into general.name
  const char* config;  // in tests/data/quantize-ref
  herd::QuantType type;
  const char* reference;
};

// herd quantize's file for c's model, made here as the fixture script made it; empty on failure.
std::string herd_gguf(const GgufCase& c) {
  const fs::path dir = scratch() / (std::string(c.model) + "-" + herd::quant_type_name(c.type));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path src = dir / c.model;
  herd::SyntheticModelSpec spec;
  spec.config_path = (kRef / c.config).string();
  spec.seed = 5;
  const herd::Status made = herd::write_synthetic_model(spec, src.string());
  EXPECT_TRUE(made.is_ok()) << made.message();
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    fs::copy_file(kRef / f, src / f);
  const fs::path out = dir / "out.gguf";
  const herd::Status s = quantize(src, out, c.type);
  EXPECT_TRUE(s.is_ok()) << s.message();
  std::string bytes = s.is_ok() ? bytes_of(out) : std::string();
  fs::remove_all(dir);
  std::error_code ec;
  fs::remove(dir.parent_path(), ec);  // once empty
  return bytes;
}

void expect_same_bytes(const std::string& got, const std::string& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const auto diff = std::mismatch(got.begin(), got.end(), want.begin());
  EXPECT_TRUE(diff.first == got.end()) << what << ": first difference at byte " << (diff.first - got.begin());
}

class QuantizeGgufReference : public testing::TestWithParam<GgufCase> {};

TEST_P(QuantizeGgufReference, IsTheFileLlamaCppWrites) {
  const GgufCase& c = GetParam();
  expect_same_bytes(herd_gguf(c), bytes_of(kRef / c.reference), c.reference);
}

INSTANTIATE_TEST_SUITE_P(
    LlamaCpp, QuantizeGgufReference,
    testing::Values(GgufCase{"ref", "config.json", herd::QuantType::q8_0, "ref.Q8_0.gguf"},
                    GgufCase{"ref", "config.json", herd::QuantType::q4_0, "ref.Q4_0.gguf"},
                    GgufCase{"ref", "config.json", herd::QuantType::q4_1, "ref.Q4_1.gguf"},
                    GgufCase{"ref", "config.json", herd::QuantType::q4_k_m, "ref.Q4_K_M.gguf"},
                    GgufCase{"ref", "config.json", herd::QuantType::q5_k_m, "ref.Q5_K_M.gguf"},
                    GgufCase{"ref", "config.json", herd::QuantType::q6_k, "ref.Q6_K.gguf"},
                    GgufCase{"ref-tied", "config-tied.json", herd::QuantType::q4_0, "ref-tied.Q4_0.gguf"}),
    [](const testing::TestParamInfo<GgufCase>& i) {
      const std::string tied = i.param.model == std::string("ref") ? "untied_" : "tied_";
      return tied + herd::quant_type_name(i.param.type);
    });

// FNV-1a, 64 bits, as the fixture script computes it: 16 lowercase hex digits.
std::string fnv1a64(const std::string& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : bytes) h = (h ^ uint8_t(c)) * 0x100000001b3ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

TEST(QuantizeGgufReference70B, IsTheFileLlamaCppWrites) {
  const std::string got = herd_gguf({"ref-deep", "config-deep.json", herd::QuantType::q4_k_m, nullptr});
  const std::string head = bytes_of(kRef / "ref-deep.Q4_K_M.head.gguf");
  ASSERT_FALSE(head.empty());
  expect_same_bytes(got.substr(0, std::min(got.size(), head.size())), head, "ref-deep.Q4_K_M.head.gguf");
  std::string digest = bytes_of(kRef / "ref-deep.Q4_K_M.fnv1a64");
  digest = digest.substr(0, digest.find('\n'));
  EXPECT_EQ(fnv1a64(got), digest) << "the tensor data differs from llama-quantize's";
}

TEST(QuantizeFp8Reference, IsWhatCompressedTensorsWrites) {
  const fs::path out = scratch() / "fp8";
  fs::remove_all(out);
  const fs::path model = fs::path(HERD_TEST_DATA) / "models" / "gqa4-hd32-untied-llama3";
  const herd::Status s = quantize(model, out, herd::QuantType::fp8);
  ASSERT_TRUE(s.is_ok()) << s.message();
  const fs::path ref_dir = kRef / "gqa4-hd32-untied-llama3.fp8";
  herd::SafetensorsFile got((out / "model.safetensors").string()), want((ref_dir / "model.safetensors").string());
  ASSERT_EQ(got.header().tensors.size(), want.header().tensors.size());
  int quantized = 0;
  for (const herd::SafetensorsEntry& w : want.header().tensors) {
    const auto g = std::find_if(got.header().tensors.begin(), got.header().tensors.end(),
                                [&](const herd::SafetensorsEntry& e) { return e.name == w.name; });
    ASSERT_NE(g, got.header().tensors.end()) << w.name;
    EXPECT_EQ(g->dtype, w.dtype) << w.name;
    EXPECT_EQ(g->shape, w.shape) << w.name;
    const herd::TensorView a = got.view(*g), b = want.view(w);
    ASSERT_EQ(a.nbytes(), b.nbytes()) << w.name;
    EXPECT_EQ(0, std::memcmp(a.data, b.data, a.nbytes())) << w.name;
    quantized += w.dtype == herd::DType::f8_e4m3;
  }
  EXPECT_EQ(quantized, 14);
  nlohmann::json a, b;
  std::ifstream(out / "config.json") >> a;
  std::ifstream(ref_dir / "config.json") >> b;
  EXPECT_EQ(a["quantization_config"], b["quantization_config"]);
  fs::remove_all(out);
  std::error_code ec;
  fs::remove(out.parent_path(), ec);  // once empty
}

}  // namespace
