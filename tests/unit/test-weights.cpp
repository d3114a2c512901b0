// Weight-set loading: sharded files through the index, and a one-line error for each way a
// checkpoint can disagree with its config.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "common/check.h"
#include "common/read-file.h"
#include "model/model-dir.h"
#include "model/synthetic.h"

namespace fs = std::filesystem;

namespace herd {
namespace {

ModelConfig tiny_config() {
  ModelConfig c;
  c.n_vocab = 64;
  c.n_embd = 32;
  c.n_ff = 48;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_head_kv = 2;
  c.head_dim = 8;
  c.n_ctx_train = 128;
  c.eos_ids = {2};
  return c;
}

class Weights : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("herd-weights-" + std::to_string(::getpid()) + "-" +
                                        testing::UnitTest::GetInstance()->current_test_info()->name());
    write_synthetic_model(tiny_config(), DType::bf16, 7, (dir_ / "src").string());
    source_ = std::make_unique<SafetensorsFile>((dir_ / "src" / "model.safetensors").string());
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The synthetic model's tensors, optionally edited, written as model dir `name`.
  std::string write_variant(const std::string& name, const std::function<void(std::vector<NamedTensor>&)>& edit) {
    std::vector<NamedTensor> ts;
    for (const auto& e : source_->header().tensors) ts.push_back({e.name, source_->view(e)});
    edit(ts);
    const fs::path d = dir_ / name;
    fs::create_directories(d);
    fs::copy_file(dir_ / "src" / "config.json", d / "config.json");
    write_safetensors((d / "model.safetensors").string(), ts);
    return d.string();
  }

  std::string load_error(const std::string& d) {
    try {
      load_model_files(d);
    } catch (const Error& e) {
      EXPECT_NE(e.kind(), ErrorKind::internal);  // invalid input, or not found for a missing path
      const std::string msg = e.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos);
      return msg;
    }
    ADD_FAILURE() << d << " loaded";
    return "";
  }

  fs::path dir_;
  std::unique_ptr<SafetensorsFile> source_;
};

TEST_F(Weights, ShardedThroughTheIndexEqualsOneFile) {
  std::vector<NamedTensor> first, second;
  std::string index = "{\"metadata\": {}, \"weight_map\": {";
  bool comma = false;
  for (const auto& e : source_->header().tensors) {
    const bool in_first = e.name.find("layers.1.") == std::string::npos;
    (in_first ? first : second).push_back({e.name, source_->view(e)});
    index += std::string(comma ? ", " : "") + "\"" + e.name + "\": \"" +
             (in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors") + "\"";
    comma = true;
  }
  index += "}}";
  const fs::path d = dir_ / "sharded";
  fs::create_directories(d);
  fs::copy_file(dir_ / "src" / "config.json", d / "config.json");
  write_safetensors((d / "model-00001-of-00002.safetensors").string(), first);
  write_safetensors((d / "model-00002-of-00002.safetensors").string(), second);
  std::ofstream(d / "model.safetensors.index.json") << index;

  const ModelFiles one = load_model_files((dir_ / "src").string());
  const ModelFiles two = load_model_files(d.string());
  EXPECT_EQ(two.weights.files.size(), 2u);
  auto same = [](const TensorView& a, const TensorView& b) {
    return a.shape == b.shape && a.dtype == b.dtype && std::memcmp(a.data, b.data, a.nbytes()) == 0;
  };
  EXPECT_TRUE(same(one.weights.tok_embd, two.weights.tok_embd));
  EXPECT_TRUE(same(one.weights.output, two.weights.output));
  for (size_t l = 0; l < 2; ++l) {
    EXPECT_TRUE(same(one.weights.layers[l].wq, two.weights.layers[l].wq));
    EXPECT_TRUE(same(one.weights.layers[l].w_down, two.weights.layers[l].w_down));
  }

  fs::remove(d / "model-00002-of-00002.safetensors");
  EXPECT_NE(load_error(d.string()).find("model-00002-of-00002.safetensors: listed in"), std::string::npos);
}

TEST_F(Weights, MissingTensorIsNamed) {
  const auto d = write_variant("missing", [](auto& ts) {
    std::erase_if(ts, [](const NamedTensor& t) { return t.name == "model.layers.1.mlp.up_proj.weight"; });
  });
  EXPECT_NE(load_error(d).find("missing tensor \"model.layers.1.mlp.up_proj.weight\" [48, 32]"), std::string::npos);
}

TEST_F(Weights, UnexpectedTensorIsNamed) {
  static const float extra[2] = {1, 2};
  const auto d = write_variant("extra", [](auto& ts) { ts.push_back({"model.extra.weight", {DType::f32, {2}, extra}}); });
  EXPECT_NE(load_error(d).find("unexpected tensor \"model.extra.weight\""), std::string::npos);
}

TEST_F(Weights, ShapeThatDisagreesWithTheConfig) {
  const auto d = write_variant("shape", [](auto& ts) {
    for (auto& t : ts)
      if (t.name == "model.layers.0.self_attn.k_proj.weight") t.view.shape = {32, 16};  // same bytes, wrong shape
  });
  EXPECT_NE(load_error(d).find("tensor \"model.layers.0.self_attn.k_proj.weight\" has shape [32, 16], config implies [16, 32]"),
            std::string::npos);
}

TEST_F(Weights, DirectoryProblems) {
  EXPECT_NE(load_error((dir_ / "nope").string()).find("no such file or directory"), std::string::npos);
  fs::create_directories(dir_ / "empty");
  EXPECT_NE(load_error((dir_ / "empty").string()).find("missing config.json"), std::string::npos);
  fs::create_directories(dir_ / "noweights");
  fs::copy_file(dir_ / "src" / "config.json", dir_ / "noweights" / "config.json");
  EXPECT_NE(load_error((dir_ / "noweights").string()).find("no *.safetensors"), std::string::npos);
}

TEST_F(Weights, NonFiniteNormWeightsAreNamed) {
  static std::vector<uint16_t> norm(32, f32_to_bf16(1.0f));
  norm[5] = f32_to_bf16(std::numeric_limits<float>::quiet_NaN());
  static std::vector<float> inf_norm(32, 1.0f);
  inf_norm[31] = std::numeric_limits<float>::infinity();
  const std::pair<const char*, TensorView> cases[] = {
      {"model.layers.1.input_layernorm.weight", {DType::bf16, {32}, norm.data()}},
      {"model.layers.0.post_attention_layernorm.weight", {DType::bf16, {32}, norm.data()}},
      {"model.norm.weight", {DType::f32, {32}, inf_norm.data()}},
  };
  for (const auto& c : cases) {
    const char* name = c.first;  // clang 14 cannot capture structured bindings in lambdas
    const TensorView& view = c.second;
    const auto d = write_variant(str_cat("nan-", name), [&](auto& ts) {
      for (auto& t : ts)
        if (t.name == name) t.view = view;
    });
    const std::string msg = load_error(d);
    EXPECT_NE(msg.find(str_cat(d, "/model.safetensors: tensor \"", name, "\" holds ")), std::string::npos) << msg;
    EXPECT_NE(msg.find("norm weights must be finite"), std::string::npos) << msg;
  }
}

// Every file of a model directory is opened only when it is a regular file.
TEST_F(Weights, FilesThatAreNotRegularAreRefused) {
  auto variant = [&](const std::string& name, const std::string& file) {
    const fs::path d = dir_ / name;
    fs::create_directories(d);
    for (const char* f : {"config.json", "model.safetensors"})
      if (f != file) fs::copy_file(dir_ / "src" / f, d / f);
    return d;
  };
  for (const std::string file : {"config.json", "model.safetensors", "generation_config.json"}) {
    fs::path d = variant("zero-" + file, file);
    fs::create_symlink("/dev/zero", d / file);
    EXPECT_NE(load_error(d.string()).find(file + ": is a character device, not a regular file"), std::string::npos);

    d = variant("fifo-" + file, file);
    ASSERT_EQ(::mkfifo((d / file).c_str(), 0600), 0);
    EXPECT_NE(load_error(d.string()).find(file + ": is a FIFO (named pipe), not a regular file"), std::string::npos);

    d = variant("dir-" + file, file);
    fs::create_directory(d / file);
    EXPECT_NE(load_error(d.string()).find(file + ": is a directory, not a file"), std::string::npos);

    d = variant("loop-" + file, file);
    fs::create_symlink(file, d / "other");
    fs::create_symlink("other", d / file);
    EXPECT_NE(load_error(d.string()).find(file + ": cannot open: too many levels of symbolic links"), std::string::npos);
  }
  const fs::path index = variant("index-fifo", "");
  ASSERT_EQ(::mkfifo((index / "model.safetensors.index.json").c_str(), 0600), 0);
  EXPECT_NE(load_error(index.string()).find("model.safetensors.index.json: is a FIFO"), std::string::npos);
  fs::create_symlink(dir_ / "loop-model", dir_ / "loop-model");
  EXPECT_NE(load_error((dir_ / "loop-model").string()).find("loop-model: "), std::string::npos);
}

TEST_F(Weights, TooLargeConfigIsRefusedBeforeReading) {
  const fs::path d = dir_ / "large";
  fs::create_directories(d);
  fs::copy_file(dir_ / "src" / "model.safetensors", d / "model.safetensors");
  fs::copy_file(dir_ / "src" / "config.json", d / "config.json");
  fs::resize_file(d / "config.json", kMaxJsonFileBytes + 1);  // sparse: no disk used
  EXPECT_NE(load_error(d.string()).find(str_cat("config.json: ", kMaxJsonFileBytes + 1,
                                                " bytes, more than the 64 MiB allowed for a JSON config")),
            std::string::npos);
}

TEST_F(Weights, UnreadableFilesAreRefused) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads every file";
  const fs::path d = dir_ / "unreadable";
  fs::create_directories(d);
  fs::copy_file(dir_ / "src" / "config.json", d / "config.json");
  fs::permissions(d / "config.json", fs::perms::none);
  EXPECT_NE(load_error(d.string()).find("config.json: cannot open: permission denied"), std::string::npos);
  fs::permissions(d / "config.json", fs::perms::owner_all);
  fs::permissions(d, fs::perms::owner_exec);  // entries can be opened, not listed
  EXPECT_NE(load_error(d.string()).find("cannot list the directory"), std::string::npos);
  fs::permissions(d, fs::perms::owner_all);
}

TEST_F(Weights, TruncatedFileIsNamed) {
  const fs::path d = dir_ / "truncated";
  fs::create_directories(d);
  fs::copy_file(dir_ / "src" / "config.json", d / "config.json");
  fs::copy_file(dir_ / "src" / "model.safetensors", d / "model.safetensors");
  fs::resize_file(d / "model.safetensors", fs::file_size(d / "model.safetensors") - 100);
  const std::string msg = load_error(d.string());
  EXPECT_NE(msg.find("model.safetensors: truncated or corrupt"), std::string::npos) << msg;
}

}  // namespace
}  // namespace herd
