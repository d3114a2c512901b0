// herd's logits and greedy tokens against Hugging Face transformers' LlamaForCausalLM on tiny
// random models (tests/reference/make_fixtures.py), in BF16 as stored and in FP32, and the same
// models converted to GGUF by llama.cpp's converter (tests/reference/make_gguf_fixtures.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "herd/herd.h"
#include "model/safetensors.h"

namespace fs = std::filesystem;

namespace {

const std::string kData = HERD_TEST_DATA;
const std::string kDevice = HERD_TEST_DEVICE;

struct Reference {
  std::vector<int32_t> ids;
  std::vector<int32_t> greedy;
  std::vector<float> greedy_gap;
  std::vector<float> logits;  // [n_positions, n_vocab]
};

Reference load_reference(const std::string& name, const std::string& tag) {
  Reference r;
  std::ifstream f(kData + "/reference/" + name + ".json");
  const auto j = nlohmann::json::parse(f);
  r.ids = j["input_ids"].get<std::vector<int32_t>>();
  r.greedy = j["greedy_" + tag].get<std::vector<int32_t>>();
  r.greedy_gap = j["greedy_gap_" + tag].get<std::vector<float>>();
  herd::SafetensorsFile st(kData + "/reference/" + name + ".safetensors");
  for (const auto& e : st.header().tensors) {
    if (e.name != "logits_" + tag) continue;
    const auto v = st.view(e);
    const float* p = static_cast<const float*>(v.data);
    r.logits.assign(p, p + v.numel());
  }
  EXPECT_FALSE(r.logits.empty());
  return r;
}

// The same model with every weight upcast to F32 (exact: the fixtures' weights are BF16).
std::string f32_copy(const std::string& src) {
  const fs::path dst = fs::temp_directory_path() / ("herd-f32-" + fs::path(src).filename().string() + "-" +
                                                    std::to_string(::getpid()));
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(src)) {
    if (e.path().extension() != ".safetensors") {
      fs::copy_file(e.path(), dst / e.path().filename(), fs::copy_options::overwrite_existing);
      continue;
    }
    herd::SafetensorsFile st(e.path().string());
    std::vector<std::vector<float>> bufs;
    std::vector<herd::NamedTensor> out;
    for (const auto& t : st.header().tensors) {
      const auto v = st.view(t);
      EXPECT_EQ(v.dtype, herd::DType::bf16);
      auto& b = bufs.emplace_back(size_t(v.numel()));
      for (int64_t i = 0; i < v.numel(); ++i) b[size_t(i)] = herd::bf16_to_f32(static_cast<const uint16_t*>(v.data)[i]);
      out.push_back({t.name, herd::TensorView{herd::DType::f32, v.shape, b.data()}});
    }
    herd::write_safetensors((dst / e.path().filename()).string(), out);
  }
  return dst.string();
}

struct Case {
  std::string model;      // under tests/data: a model folder or a GGUF file
  std::string reference;  // name in tests/data/reference
  bool f32;               // against the FP32 reference (a folder is upcast to F32 first)
  bool fast = false;      // the CPU's fast kernels (f16 KV cache) instead of the exact path
  int tp = 1;             // tensor-parallel ranks (CPU only)
  bool kv_fp8 = false;    // an FP8 E4M3 KV cache
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.model << (c.f32 ? " f32" : " bf16") << (c.fast ? " fast" : "") << " tp " << c.tp << (c.kv_fp8 ? " kv fp8" : "");
}

std::string case_name(const testing::TestParamInfo<Case>& info) {
  std::string n = fs::path(info.param.model).filename().string() + (info.param.f32 ? "_f32" : "_bf16") +
                  (info.param.fast ? "_fast" : "") + (info.param.tp > 1 ? "_tp" + std::to_string(info.param.tp) : "") +
                  (info.param.kv_fp8 ? "_kvfp8" : "");
  std::replace_if(n.begin(), n.end(), [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)); }, '_');
  return n;
}

class ReferenceLogits : public testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const auto devices = herd::available_devices();
    if (std::find(devices.begin(), devices.end(), kDevice) == devices.end())
      GTEST_SKIP() << "no " << kDevice << " device";
  }
};

TEST_P(ReferenceLogits, MatchesTransformers) {
  const Case& c = GetParam();
  const Reference ref = load_reference(c.reference, c.f32 ? "f32" : "bf16");
  std::string dir = kData + "/" + c.model;
  const bool copied = c.f32 && fs::is_directory(dir);
  if (copied) dir = f32_copy(dir);

  herd::ModelOptions opt;
  opt.device = kDevice;
  opt.n_threads = 2;
  opt.max_context = 128;
  opt.exact = !c.fast;
  opt.tensor_parallel = c.tp;
  if (c.kv_fp8) opt.kv_dtype = "fp8";
  std::unique_ptr<herd::Model> model;
  const herd::Status loaded = herd::Model::load(dir, opt, &model);
  ASSERT_TRUE(loaded) << loaded.message();
  const int64_t n_vocab = model->info().n_vocab;

  std::vector<float> logits;
  const herd::Status ran = model->logits(ref.ids, /*all_positions=*/true, &logits);
  ASSERT_TRUE(ran) << ran.message();
  ASSERT_EQ(logits.size(), ref.logits.size());
  float max_ref = 0.f, max_diff = 0.f;
  for (size_t i = 0; i < logits.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(ref.logits[i]));
    max_diff = std::max(max_diff, std::fabs(logits[i] - ref.logits[i]));
  }
  // The BF16 reference rounds activations to BF16 between ops; herd keeps them in F32 on the
  // CPU and rounds only matmul inputs on CUDA. The CPU's fast path rounds K and V to f16 in its
  // cache (11 significant bits): 1e-3 against the FP32 reference.
  // An FP8 cache keeps 4 significant bits of K and V (rounding moves a value by up to 1/16 of it):
  // 5e-2, where these models measure 0.0073 to 0.037 on the CPU, either path.
  const bool exact_cpu = kDevice == "cpu" && !c.fast;
  const float tolerance = c.kv_fp8 ? 5e-2f : c.f32 ? (exact_cpu ? 1e-4f : kDevice == "cpu" ? 1e-3f : 5e-3f) : 2e-2f;
  EXPECT_LE(max_diff / max_ref, tolerance) << "max|herd - ref| / max|ref| over " << ref.ids.size() << " x " << n_vocab;

  // Greedy: identical, except where the reference itself nearly tied (top-2 gap < 1% of max|logit|,
  // 5% with an FP8 cache), after which the continuations may legitimately part.
  std::vector<int32_t> out;
  const herd::Status generated = model->generate_greedy(ref.ids, int(ref.greedy.size()), &out);
  ASSERT_TRUE(generated) << generated.message();
  const auto& eos = model->info().eos_ids;
  for (size_t i = 0; i < ref.greedy.size(); ++i) {
    if ((!c.f32 || c.fast || c.kv_fp8) && ref.greedy_gap[i] < (c.kv_fp8 ? 0.05f : 0.01f) * max_ref) break;
    ASSERT_LT(i, out.size()) << "herd stopped early";
    ASSERT_EQ(out[i], ref.greedy[i]) << "greedy token " << i;
    if (std::find(eos.begin(), eos.end(), out[i]) != eos.end()) {
      EXPECT_EQ(out.size(), i + 1) << "generation must stop after an end-of-sequence id";
      break;
    }
  }
  if (copied) fs::remove_all(dir);
}

std::vector<Case> cases() {
  std::vector<Case> v;
  for (std::string m : {"gqa4-hd32-untied-llama3", "mha-hd128-tied", "gqa4-hd128-tied-llama3", "mha-hd64-untied"})
    for (bool f32 : {false, true}) v.push_back({"models/" + m, m, f32});
  // Meta's layout: params.json, Meta names, interleaved q/k rows permuted at load.
  for (bool f32 : {false, true})
    v.push_back({"models/gqa4-hd32-untied-llama3-meta", "gqa4-hd32-untied-llama3", f32});
  // Meta's own files (consolidated.NN.pth by torch.save) at model-parallel degrees 1, 2 and 4, the
  // ranks joined at load; BF16 as stored.
  for (int mp : {1, 2, 4}) {
    const std::string dir = "models/gqa8x4-hd16-untied-llama3-meta-pth-mp" + std::to_string(mp);
    v.push_back({dir, "gqa8x4-hd16-untied-llama3", false});
  }
  // GGUF: llama.cpp's names, interleaved q/k rows and rope_freqs factors. The weights are the BF16
  // fixtures' values, which F16 and BF16 hold exactly, so the FP32 reference applies to all three.
  v.push_back({"gguf/gqa4-hd32-untied-llama3.F32.gguf", "gqa4-hd32-untied-llama3", true});
  for (const char* t : {"F16", "BF16"})
    v.push_back({std::string("gguf/gqa4-hd128-tied-llama3.") + t + ".gguf", "gqa4-hd128-tied-llama3", true});
  // Eight query heads over 2, 4 and 8 KV heads, the models tensor parallelism is tested on below.
  for (std::string m : {"gqa8x2-hd16-untied-llama3", "gqa8x4-hd16-untied-llama3", "mha8-hd16-tied"})
    for (bool f32 : {false, true}) v.push_back({"models/" + m, m, f32});
  // Every case again on the CPU's fast kernels (CUDA has one path).
  const size_t n = kDevice == "cpu" ? v.size() : 0;
  for (size_t i = 0; i < n; ++i) {
    v.push_back(v[i]);
    v.back().fast = true;
  }
  // An FP8 KV cache: the CPU's exact and fast paths, and CUDA.
  for (std::string m : {"gqa4-hd32-untied-llama3", "mha-hd128-tied", "gqa4-hd128-tied-llama3", "mha-hd64-untied"})
    for (bool fast : {false, true})
      if (!fast || kDevice == "cpu") v.push_back({"models/" + m, m, true, fast, 1, true});
  // Split over ranks (threads of this process on the CPU): 2 to 8 of them, the KV heads split, or
  // past their count (gqa8x2 at 4 and 8, gqa4 at 2 and 4) replicated.
  if (kDevice == "cpu") {
    for (std::string m : {"gqa8x2-hd16-untied-llama3", "gqa8x4-hd16-untied-llama3", "mha8-hd16-tied"})
      for (int tp : {2, 4, 8})
        for (bool fast : {false, true}) v.push_back({"models/" + m, m, true, fast, tp});
    for (int tp : {2, 4}) v.push_back({"models/gqa4-hd32-untied-llama3", "gqa4-hd32-untied-llama3", true, false, tp});
    v.push_back({"models/gqa4-hd32-untied-llama3-meta", "gqa4-hd32-untied-llama3", true, false, 2});
    // Meta's model-parallel files at every tensor-parallel degree: joined at load, split again.
    for (int mp : {1, 2, 4})
      for (int tp : {2, 4})
        v.push_back({"models/gqa8x4-hd16-untied-llama3-meta-pth-mp" + std::to_string(mp), "gqa8x4-hd16-untied-llama3",
                     false, false, tp});
    v.push_back({"gguf/gqa4-hd128-tied-llama3.BF16.gguf", "gqa4-hd128-tied-llama3", true, true, 4});
    v.push_back({"models/gqa8x2-hd16-untied-llama3", "gqa8x2-hd16-untied-llama3", true, true, 2, true});
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ReferenceLogits, testing::ValuesIn(cases()), case_name);

}  // namespace
