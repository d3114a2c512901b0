// The torch.save reader against files torch wrote (tests/reference/make_meta_pth_fixtures.py):
// tensors and values as torch reads them back, ZIP64 directories, and a clear error for each file
// it must refuse; Meta's checkpoints at model-parallel degrees 1, 2 and 4 against the Hugging Face
// form of the same model, and a broken checkpoint directory through the public API.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/check.h"
#include "herd/herd.h"
#include "model/model-dir.h"
#include "model/torch-checkpoint.h"
#include "model/torch-pickle.h"

namespace fs = std::filesystem;

namespace herd {
namespace {

const std::string kData = HERD_TEST_DATA;
const std::string kTorch = kData + "/torch/";
const std::string kMetaPth = kData + "/models/gqa8x4-hd16-untied-llama3-meta-pth-mp";

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

float element(const TensorView& t, int64_t i) {
  switch (t.dtype) {
    case DType::bf16: return bf16_to_f32(static_cast<const uint16_t*>(t.data)[i]);
    case DType::f16: return f16_to_f32(static_cast<const uint16_t*>(t.data)[i]);
    default: return static_cast<const float*>(t.data)[i];
  }
}

void expect_as_torch_read_it(const std::string& file) {
  const auto expected = nlohmann::json::parse(file_bytes(kTorch + "small.json"));
  TorchCheckpoint ckpt(kTorch + file);
  ASSERT_EQ(ckpt.tensors().size(), expected.size());
  const std::map<std::string, DType> dtypes{
      {"bfloat16", DType::bf16}, {"float16", DType::f16}, {"float32", DType::f32}};
  for (const NamedTensor& t : ckpt.tensors()) {
    SCOPED_TRACE(file + ": " + t.name);
    ASSERT_TRUE(expected.contains(t.name));
    const auto& e = expected[t.name];
    EXPECT_EQ(t.view.dtype, dtypes.at(e["dtype"].get<std::string>()));
    EXPECT_EQ(t.view.shape, e["shape"].get<Shape>());
    const auto values = e["values"].get<std::vector<float>>();
    ASSERT_EQ(t.view.numel(), int64_t(values.size()));
    for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(element(t.view, int64_t(i)), values[i]) << i;
  }
}

TEST(TorchCheckpoint, ReadsWhatTorchSaveWrote) { expect_as_torch_read_it("small.pth"); }

TEST(TorchCheckpoint, ReadsZip64Directories) { expect_as_torch_read_it("small-zip64.pth"); }

TEST(TorchCheckpoint, TensorsAreViewsIntoTheFile) {
  const std::string bytes = file_bytes(kTorch + "small.pth");
  const auto* begin = reinterpret_cast<const uint8_t*>(bytes.data());
  for (const NamedTensor& t : read_torch_checkpoint(begin, bytes.size(), "small.pth")) {
    const auto* p = static_cast<const uint8_t*>(t.view.data);
    EXPECT_TRUE(p >= begin && p + t.view.nbytes() <= begin + bytes.size()) << t.name;
  }
}

// The message of the invalid-input Error reading `bytes` as `source` throws.
std::string read_error(const std::string& bytes, const std::string& source) {
  try {
    read_torch_checkpoint(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), source);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_input) << e.what();
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(source + ": ", 0), 0u) << "names the file: " << msg;
    return msg;
  }
  ADD_FAILURE() << source << " was accepted";
  return "";
}

TEST(TorchCheckpoint, RefusesWhatItCannotRead) {
  const std::pair<const char*, const char*> cases[] = {
      {"compressed.pth", "compressed (method 8)"},
      {"evil-global.pth", "the global posix.system is not part of a plain tensor state dict; herd does not execute"},
      {"transposed.pth", "not contiguous"},
      {"int64.pth", "torch.LongStorage are not supported"},
      {"nested.pth", "\"model\" is a dict, not a tensor"},
      {"legacy.pth", "legacy torch.save file"},
  };
  for (const auto& [file, reason] : cases) {
    const std::string msg = read_error(file_bytes(kTorch + file), file);
    EXPECT_NE(msg.find(reason), std::string::npos) << file << ": " << msg;
  }
}

TEST(TorchCheckpoint, RefusesEveryTruncation) {
  const std::string bytes = file_bytes(kTorch + "small.pth");
  for (size_t n = 0; n < bytes.size(); ++n) read_error(bytes.substr(0, n), "cut.pth");
}

// --- the unpickler's limits, on hand-made pickles

std::string pickle_error(const std::string& pkl) {
  try {
    parse_state_dict_pickle(reinterpret_cast<const uint8_t*>(pkl.data()), pkl.size(), "p.pth");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_input);
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return "";
}

TEST(TorchPickle, RefusesMalformedPickles) {
  using namespace std::string_literals;
  const std::string proto = "\x80\x02";
  EXPECT_EQ(parse_state_dict_pickle(reinterpret_cast<const uint8_t*>("\x80\x02}."), 4, "p").tensors.size(), 0u);
  EXPECT_EQ(pickle_error(proto + "}"), "p.pth: data.pkl: truncated: ends before its STOP opcode");
  EXPECT_NE(pickle_error(proto + "t.").find("MARK"), std::string::npos);
  EXPECT_NE(pickle_error(proto + ".").find("underflow"), std::string::npos);
  EXPECT_NE(pickle_error(proto + "h\x05."s).find("memo entry 5"), std::string::npos);
  EXPECT_NE(pickle_error(proto + std::string(65, '(')).find("nesting"), std::string::npos);
  EXPECT_NE(pickle_error(proto + "X\xff\xff\xff\x7f").find("a string of"), std::string::npos);
  EXPECT_NE(pickle_error(proto + "(dp0\n.").find("opcode 0x64"), std::string::npos);  // DICT: protocol 0
  EXPECT_NE(pickle_error(proto + "cbuiltins\neval\n.").find("builtins.eval"), std::string::npos);
  EXPECT_NE(pickle_error(proto + ").").find("the pickled object is a tuple"), std::string::npos);
  EXPECT_NE(pickle_error(proto + "}K\x01K\x02s.").find("key is a int"), std::string::npos);
  EXPECT_NE(pickle_error(proto + "}(K\x01u.").find("odd number"), std::string::npos);
  // A dict that holds itself: refused as a value, without recursing.
  EXPECT_NE(pickle_error(proto + "}q\x00X\x01\x00\x00\x00" "ah\x00s."s).find("\"a\" is a dict"), std::string::npos);
}

// --- Meta's checkpoints as a model

// Each tensor of a's weight set equals b's, byte for byte.
void expect_same_weights(const HostWeights& a, const HostWeights& b) {
  auto same = [](const TensorView& x, const TensorView& y, const std::string& what) {
    ASSERT_EQ(x.dtype, y.dtype) << what;
    ASSERT_EQ(x.shape, y.shape) << what;
    EXPECT_EQ(std::memcmp(x.data, y.data, x.nbytes()), 0) << what;
  };
  same(a.tok_embd, b.tok_embd, "tok_embd");
  same(a.output_norm, b.output_norm, "output_norm");
  same(a.output, b.output, "output");
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t l = 0; l < a.layers.size(); ++l) {
    const auto &x = a.layers[l], &y = b.layers[l];
    for (auto [f, name] : {std::pair{&LayerWeights::attn_norm, "attn_norm"}, {&LayerWeights::wq, "wq"},
                           {&LayerWeights::wk, "wk"}, {&LayerWeights::wv, "wv"}, {&LayerWeights::wo, "wo"},
                           {&LayerWeights::ffn_norm, "ffn_norm"}, {&LayerWeights::w_gate, "w_gate"},
                           {&LayerWeights::w_up, "w_up"}, {&LayerWeights::w_down, "w_down"}})
      same(x.*f, y.*f, str_cat("layer ", l, " ", name));
  }
}

TEST(MetaPth, EveryDegreeIsTheHuggingFaceModel) {
  const ModelFiles hf = load_model_files(kData + "/models/gqa8x4-hd16-untied-llama3");
  for (int mp : {1, 2, 4}) {
    SCOPED_TRACE(str_cat("model-parallel degree ", mp));
    const ModelFiles meta = load_model_files(kMetaPth + std::to_string(mp));
    EXPECT_EQ(meta.config.n_ff, hf.config.n_ff);
    EXPECT_EQ(meta.weights.torch_files.size(), size_t(mp));
    expect_same_weights(meta.weights, hf.weights);
    // One rank is mapped, not copied, except its permuted q/k rows; several are joined in memory
    // (every split tensor: the embedding, the LM head and all but the two norms of each layer).
    const size_t n_layer = size_t(hf.config.n_layer);
    EXPECT_EQ(meta.weights.owned.size(), mp == 1 ? 2 * n_layer : 2 + 7 * n_layer);
  }
}

// A [rows, cols] tensor of `got` equals `want` inside rows (or columns) [first, first + count) and
// is zero outside them: the rank's slice was copied and nothing else was written.
void expect_only_slice(const TensorView& got, const TensorView& want, bool by_rows, int64_t first, int64_t count,
                       const std::string& what) {
  ASSERT_EQ(got.shape, want.shape) << what;
  const int64_t rows = got.shape[0], cols = got.shape[1];
  const size_t elem = dtype_nbytes(got.dtype, 1);
  const auto* g = static_cast<const uint8_t*>(got.data);
  const auto* w = static_cast<const uint8_t*>(want.data);
  int64_t wrong = 0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t k = by_rows ? i : j;
      const size_t at = size_t(i * cols + j) * elem;
      const bool inside = k >= first && k < first + count;
      const bool ok = inside ? std::memcmp(g + at, w + at, elem) == 0
                             : std::all_of(g + at, g + at + elem, [](uint8_t b) { return b == 0; });
      wrong += !ok;
    }
  EXPECT_EQ(wrong, 0) << what << ": elements other than the rank's slice, or a slice unlike the model's";
}

// A process that runs one tensor-parallel rank joins Meta's model-parallel parts into tensors of
// full shape but copies only its own rows or columns: what it reads equals the Hugging Face model,
// the rest is never written (zero pages, not resident). With one part there is nothing to join: the
// tensors are views of the mapped file (whole), and only q/k, permuted, are copied, the rank's rows.
TEST(MetaPth, ARankProcessCopiesOnlyItsSlices) {
  const ModelFiles hf = load_model_files(kData + "/models/gqa8x4-hd16-untied-llama3");
  const ModelConfig& c = hf.config;
  const int64_t hd = c.head_dim;
  for (int mp : {1, 2, 4})
    for (int tp : {2, 4})
      for (int rank = 0; rank < tp; ++rank) {
        SCOPED_TRACE(str_cat("model-parallel degree ", mp, ", rank ", rank, " of ", tp));
        const ModelFiles meta = load_model_files(kMetaPth + std::to_string(mp), 8.0f, Shard{rank, tp});
        const ShardDims d = shard_dims(c, Shard{rank, tp});
        const HostWeights &a = meta.weights, &b = hf.weights;
        EXPECT_TRUE(a.owned.empty()) << "nothing copied in full";
        // The slice [first, first + count) of a joined tensor; a whole mapped view with one part.
        auto check = [&](const TensorView& x, const TensorView& y, bool by_rows, int64_t first, int64_t count,
                         const std::string& what, bool qk = false) {
          const int64_t all = by_rows ? y.shape[0] : y.shape[1];
          if (mp == 1 && !qk) expect_only_slice(x, y, by_rows, 0, all, what);
          else expect_only_slice(x, y, by_rows, first, count, what);
        };
        check(a.tok_embd, b.tok_embd, true, d.vocab0, d.n_vocab, "tok_embd");
        check(a.output, b.output, true, d.vocab0, d.n_vocab, "output");
        for (size_t l = 0; l < a.layers.size(); ++l) {
          const LayerWeights &x = a.layers[l], &y = b.layers[l];
          check(x.wq, y.wq, true, d.head0 * hd, d.n_head * hd, str_cat("layer ", l, " wq"), true);
          check(x.wk, y.wk, true, d.head_kv0 * hd, d.n_head_kv * hd, str_cat("layer ", l, " wk"), true);
          check(x.wv, y.wv, true, d.head_kv0 * hd, d.n_head_kv * hd, str_cat("layer ", l, " wv"));
          check(x.wo, y.wo, false, d.head0 * hd, d.n_head * hd, str_cat("layer ", l, " wo"));
          check(x.w_gate, y.w_gate, true, d.ff0, d.n_ff, str_cat("layer ", l, " w_gate"));
          check(x.w_up, y.w_up, true, d.ff0, d.n_ff, str_cat("layer ", l, " w_up"));
          check(x.w_down, y.w_down, false, d.ff0, d.n_ff, str_cat("layer ", l, " w_down"));
        }
      }
}

// The same for files with interleaved q/k rows (llama.cpp's GGUF, Meta's layout in safetensors): a
// rank's process permutes only its heads of wq and wk; the other tensors are the file's, whole.
TEST(MetaPth, ARankProcessPermutesOnlyItsHeads) {
  for (const char* model : {"/gguf/gqa4-hd32-untied-llama3.F32.gguf", "/models/gqa4-hd32-untied-llama3-meta"}) {
    const ModelFiles whole = load_model_files(kData + model);
    const ModelConfig& c = whole.config;
    for (int tp : {2, 4})
      for (int rank = 0; rank < tp; ++rank) {
        SCOPED_TRACE(str_cat(model, ", rank ", rank, " of ", tp));
        const ModelFiles part = load_model_files(kData + model, 8.0f, Shard{rank, tp});
        const ShardDims d = shard_dims(c, Shard{rank, tp});
        EXPECT_TRUE(part.weights.owned.empty()) << "nothing permuted in full";
        for (size_t l = 0; l < part.weights.layers.size(); ++l) {
          const LayerWeights &x = part.weights.layers[l], &y = whole.weights.layers[l];
          expect_only_slice(x.wq, y.wq, true, d.head0 * c.head_dim, d.n_head * c.head_dim, str_cat("layer ", l, " wq"));
          expect_only_slice(x.wk, y.wk, true, d.head_kv0 * c.head_dim, d.n_head_kv * c.head_dim,
                            str_cat("layer ", l, " wk"));
          expect_only_slice(x.wo, y.wo, false, 0, y.wo.shape[1], str_cat("layer ", l, " wo, whole"));
        }
      }
  }
}

class MetaPthDir : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("herd-meta-pth-" + std::to_string(::getpid()) + "-" +
                                        testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The mp-rank fixture's params.json and the given ranks' files, renamed.
  void copy_from(int mp, const std::vector<std::pair<std::string, std::string>>& files) {
    fs::copy_file(kMetaPth + std::to_string(mp) + "/params.json", dir_ / "params.json");
    for (const auto& [from, to] : files) fs::copy_file(from, dir_ / to);
  }

  // Loading through the public API fails with one invalid-input line that names `file`.
  std::string load_error(const std::string& file) {
    ModelOptions opt;
    opt.device = "cpu";
    opt.n_threads = 1;
    std::unique_ptr<Model> model;
    const Status s = Model::load(dir_.string(), opt, &model);
    EXPECT_EQ(s.code(), Status::Code::invalid_input) << s.message();
    EXPECT_NE(s.message().find(file), std::string::npos) << "names " << file << ": " << s.message();
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
    return s.message();
  }

  fs::path dir_;
};

std::string rank_file(int mp, int rank) { return str_cat(kMetaPth, mp, "/consolidated.0", rank, ".pth"); }

TEST_F(MetaPthDir, RefusesAMissingRank) {
  copy_from(4, {{rank_file(4, 0), "consolidated.00.pth"}, {rank_file(4, 1), "consolidated.01.pth"},
                {rank_file(4, 3), "consolidated.03.pth"}});
  EXPECT_NE(load_error("consolidated.02.pth").find("is missing"), std::string::npos);
}

TEST_F(MetaPthDir, RefusesOneRankTwice) {
  copy_from(1, {{rank_file(1, 0), "consolidated.00.pth"}, {rank_file(1, 0), "consolidated.0.pth"}});
  EXPECT_NE(load_error("consolidated.00.pth").find("both model-parallel rank 0"), std::string::npos);
}

TEST_F(MetaPthDir, RefusesRanksOfDifferentSplits) {
  copy_from(2, {{rank_file(2, 0), "consolidated.00.pth"}, {rank_file(4, 1), "consolidated.01.pth"}});
  EXPECT_NE(load_error("consolidated.01.pth").find("every rank holds an equal part"), std::string::npos);
}

TEST_F(MetaPthDir, RefusesATruncatedRank) {
  copy_from(2, {{rank_file(2, 0), "consolidated.00.pth"}});
  const std::string bytes = file_bytes(rank_file(2, 1));
  std::ofstream(dir_ / "consolidated.01.pth", std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() / 2));
  EXPECT_NE(load_error("consolidated.01.pth").find("truncated"), std::string::npos);
}

TEST_F(MetaPthDir, RefusesPickledCode) {
  copy_from(1, {{kTorch + "evil-global.pth", "consolidated.00.pth"}});
  EXPECT_NE(load_error("consolidated.00.pth").find("does not execute pickled code"), std::string::npos);
}

}  // namespace
}  // namespace herd
