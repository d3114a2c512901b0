// The GGUF reader and the dequantizers: blocks quantized by llama.cpp's own quantizer, checked
// against gguf-py's numpy dequantizers (tests/reference/make_gguf_fixtures.py), and corrupt
// files, each of which must fail with one line naming the file and what is wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/check.h"
#include "common/gguf-file.h"
#include "common/mmap.h"
#include "common/quant.h"
#include "herd/herd.h"

namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(HERD_TEST_DATA) + "/gguf/";

TEST(GgufDequant, MatchesGgufPyOnBlocksQuantizedByLlamaCpp) {
  const herd::GgufFile expected(kDir + "dequant-expected.gguf");
  std::map<std::string, std::unique_ptr<herd::GgufFile>> files;
  std::set<herd::DType> covered;
  for (const herd::GgufTensorInfo& e : expected.tensors()) {
    const size_t slash = e.name.find('/');
    const std::string file = e.name.substr(0, slash), tensor = e.name.substr(slash + 1);
    auto& f = files[file];
    if (!f) f = std::make_unique<herd::GgufFile>(kDir + file);
    const herd::GgufTensorInfo* t = f->tensor(tensor);
    ASSERT_NE(t, nullptr) << e.name;
    ASSERT_EQ(e.dtype, herd::DType::f32);
    const int64_t cols = t->shape.back(), rows = e.shape[0];
    ASSERT_EQ(e.shape.back(), cols) << e.name;
    std::vector<float> got(size_t(rows * cols));
    herd::dequantize_row(t->dtype, t->data, got.data(), rows * cols);  // rows are contiguous
    const auto* want = static_cast<const float*>(e.data);
    float worst = 0.f, scale = 0.f;
    for (size_t i = 0; i < got.size(); ++i) {
      worst = std::max(worst, std::fabs(got[i] - want[i]));
      scale = std::max(scale, std::fabs(want[i]));
    }
    // Both compute d * scale * q - m in f32, in possibly different orders: a few ulps.
    EXPECT_LE(worst, 4e-7f * scale) << e.name << " (" << herd::dtype_name(t->dtype) << ")";
    covered.insert(t->dtype);
  }
  using herd::DType;
  EXPECT_EQ(covered, (std::set<DType>{DType::q8_0, DType::q4_0, DType::q4_1, DType::q4_k, DType::q5_k, DType::q6_k}));
}

TEST(GgufFile, ReadsMetadataOfEveryKind) {
  const herd::GgufFile f(kDir + "quant-Q4_K_M.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.require_int("llama.block_count"), 2);
  EXPECT_NEAR(*f.get_float("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-12);
  EXPECT_EQ(f.get_strings("tokenizer.ggml.tokens")->size(), 256u);
  EXPECT_EQ(f.get_strings("tokenizer.ggml.merges")->size(), 1u);
  EXPECT_EQ(f.get_ints("tokenizer.ggml.token_type")->size(), 256u);
  EXPECT_FALSE(f.get_int("no.such.key"));
  EXPECT_THROW((void)f.get_int("general.architecture"), herd::Error);  // a string, not an integer
  const herd::GgufTensorInfo* q = f.tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->shape, (herd::Shape{256, 256}));
  EXPECT_EQ(f.tensor("rope_freqs.weight")->shape, (herd::Shape{32}));
}

// llama.cpp's converter writes generation_config.json's sampling defaults as general.sampling.*
// (temperature 0.7, top_p 0.8, top_k 40 in the fixture); unset options take them, as for a
// Hugging Face directory.
TEST(GgufFile, SamplingDefaultsComeFromTheFile) {
  herd::EngineOptions o;
  o.device = "cpu";
  o.n_threads = 2;
  o.kv_memory = 8 << 20;
  std::unique_ptr<herd::Engine> e;
  ASSERT_TRUE(herd::Engine::load(kDir + "quant-Q8_0.gguf", o, &e));
  herd::GenerateRequest r;
  for (int32_t i = 0; i < 12; ++i) r.prompt.push_back((i * 37 + 5) % 256);
  r.max_tokens = 24;
  r.ignore_eos = true;
  r.sampling.seed = 5;
  herd::GenerateResult by_default, explicit_options, greedy;
  ASSERT_TRUE(e->generate(r, &by_default));
  r.sampling.temperature = 0.7f;
  r.sampling.top_p = 0.8f;
  r.sampling.top_k = 40;
  ASSERT_TRUE(e->generate(r, &explicit_options));
  r.sampling.temperature = 0.0f;
  ASSERT_TRUE(e->generate(r, &greedy));
  EXPECT_EQ(by_default.ids, explicit_options.ids);
  EXPECT_NE(by_default.ids, greedy.ids);
}

// A copy of a fixture with some bytes changed, and what loading it must say.
class CorruptGguf : public testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(kDir + "quant-Q4_0.gguf", std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), {});
    ASSERT_GT(bytes_.size(), 1000u);
  }
  void TearDown() override { fs::remove(path_); }

  size_t find(const std::string& s) const {
    const size_t at = bytes_.find(s);
    EXPECT_NE(at, std::string::npos) << s;
    return at;
  }
  // Offset of the field after a tensor's name in the tensor infos: n_dims, dims, type, offset.
  size_t tensor_info(const std::string& name) const {
    const std::string key = std::string("\0\0\0\0\0\0\0", 7) + name;  // the name's length ends in 7 zero bytes
    return find(key) + key.size();
  }
  // Loads the bytes as a model and expects one line naming the file and `what`.
  void expect_error(const std::string& bytes, const std::string& what) {
    { std::ofstream(path_, std::ios::binary) << bytes; }
    herd::EngineOptions o;
    o.device = "cpu";
    o.n_threads = 1;
    o.kv_memory = 1 << 20;
    std::unique_ptr<herd::Engine> engine;
    const herd::Status s = herd::Engine::load(path_, o, &engine);
    EXPECT_EQ(s.code(), herd::Status::Code::invalid_input) << what << ": " << s.message();
    EXPECT_NE(s.message().find(path_), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(what), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
  }

  std::string bytes_;
  const std::string path_ = (fs::temp_directory_path() / ("herd-corrupt-" + std::to_string(::getpid()) + ".gguf")).string();
};

TEST_F(CorruptGguf, EveryTruncationFailsCleanly) {
  // Every cut inside the header and metadata, then a stride through the tensor data.
  const size_t data_start = bytes_.size() - 500000;
  for (size_t n = 0; n < bytes_.size(); n += n < 9000 ? 1 + n / 64 : 4099) {
    if (n >= data_start && n < data_start + 9000) continue;
    { std::ofstream(path_, std::ios::binary) << bytes_.substr(0, n); }
    std::unique_ptr<herd::Engine> engine;
    herd::EngineOptions o;
    o.device = "cpu";
    const herd::Status s = herd::Engine::load(path_, o, &engine);
    ASSERT_EQ(s.code(), herd::Status::Code::invalid_input) << "cut at " << n << ": " << s.message();
    ASSERT_EQ(s.message().find('\n'), std::string::npos) << s.message();
  }
}

TEST_F(CorruptGguf, NamesWhatIsWrong) {
  std::string b = bytes_;
  b[4] = 1;  // version 1
  expect_error(b, "GGUF version 1 is not supported");

  b = bytes_;
  b.replace(find("llama.block_count") + 17 + 4, 4, std::string("\xff\xff\xff\x7f", 4));
  expect_error(b, "num_hidden_layers of 2147483647 is implausibly large");

  b = bytes_;
  const size_t info = tensor_info("blk.0.attn_q.weight");
  b.replace(info + 4 + 16, 4, std::string("\x06\0\0\0", 4));  // ggml type 6: Q5_0
  expect_error(b, "tensor \"blk.0.attn_q.weight\" has type Q5_0, which herd does not support");

  b = bytes_;
  b.replace(info + 4 + 16, 4, std::string("\x63\0\0\0", 4));
  expect_error(b, "unknown ggml type id 99");

  b = bytes_;
  b[info + 4 + 16 + 4] += 1;  // offset 1 byte off the alignment
  expect_error(b, "is not a multiple of the alignment");

  b = bytes_;
  const size_t arch = find("general.architecture") + 20 + 4 + 8;  // key, value type, string length
  b.replace(arch, 5, "qwen2");
  expect_error(b, "architecture \"qwen2\" is not supported");

  b = bytes_;
  b.replace(find("tokenizer.ggml.tokens"), 21, "tokenizer.ggml.tokenz");
  expect_error(b, "missing key \"tokenizer.ggml.tokens\"");

  b = bytes_;
  b.replace(find("tokenizer.ggml.model") + 20 + 4 + 8, 4, "t5t5");
  expect_error(b, "\"tokenizer.ggml.model\" is \"t5t5\"");

  b = bytes_;
  b.replace(find("llama-bpe"), 9, "llama-xyz");
  expect_error(b, "pre-tokenizer \"llama-xyz\"");

  b = bytes_;
  b.replace(find("blk.1.ffn_up.weight"), 19, "blk.1.ffn_xx.weight");
  expect_error(b, "missing tensor \"blk.1.ffn_up.weight\"");

  b = bytes_;
  b.replace(tensor_info("output.weight") + 4, 8, std::string("\0\0\x01\0\0\0\0\0", 8));  // ne[0] 256 -> 65536
  expect_error(b, "runs past the end of the file");
}

TEST_F(CorruptGguf, NonFiniteNormsAndHyperparametersAreRefused) {
  const herd::GgufFile parsed(reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size(), "fixture");
  for (const char* name : {"output_norm.weight", "blk.1.attn_norm.weight", "blk.0.ffn_norm.weight"}) {
    const herd::GgufTensorInfo* t = parsed.tensor(name);
    ASSERT_TRUE(t && t->dtype == herd::DType::f32) << name;
    const size_t at = size_t(static_cast<const char*>(t->data) - bytes_.data()) + 3 * 4;  // element 3
    std::string b = bytes_;
    const float nan = std::nanf("");
    b.replace(at, 4, reinterpret_cast<const char*>(&nan), 4);
    expect_error(b, std::string("tensor \"") + name + "\" holds nan at index 3; norm weights must be finite");
  }
  std::string b = bytes_;
  const float inf = INFINITY;
  b.replace(find("llama.attention.layer_norm_rms_epsilon") + 38 + 4, 4, reinterpret_cast<const char*>(&inf), 4);
  expect_error(b, "rms_norm_eps must lie in (0, 1], got inf");
  b = bytes_;
  const float nan = std::nanf("");
  b.replace(find("llama.rope.freq_base") + 20 + 4, 4, reinterpret_cast<const char*>(&nan), 4);
  expect_error(b, "rope_theta must be positive and finite, got nan");
}

}  // namespace
