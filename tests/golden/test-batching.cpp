// Batch invariance at the model level: chunked prefill and batches that mix sequences, prefill
// chunks and decode tokens give the logits of one sequence run alone in one pass.
//
// Run twice: with the FMA kernels only (the default), where every token's products are the same
// operations whatever the batch, to 1e-5; and with HERD_CPU_AMX=on, where a step of 64 or more tokens
// multiplies this BF16 model on AMX tiles where the machine has them (backend/cpu/amx-gemm.cpp):
// equal to the FMA kernels within f32 rounding, which the f16 KV cache can round into one f16 step
// of a cached value (measured 5e-5 here), so to 2e-4. A batching mistake (a wrong slot, position or
// block) moves logits by far more than either.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "model/llama.h"
#include "model/model-dir.h"

namespace herd {
namespace {

const std::string kModel = std::string(HERD_TEST_DATA) + "/models/gqa4-hd32-untied-llama3";
constexpr int32_t kBlock = 16;

class Batching : public testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) setenv("HERD_CPU_AMX", "on", 1);
    files_ = load_model_files(kModel);
    be_ = make_cpu_backend(2);
    unsetenv("HERD_CPU_AMX");
    model_ = std::make_unique<LlamaModel>(files_.config, files_.weights, *be_);
    model_->allocate_kv(/*n_blocks=*/64, kBlock);
    std::ifstream f(std::string(HERD_TEST_DATA) + "/reference/gqa4-hd32-untied-llama3.json");
    ids_ = nlohmann::json::parse(f)["input_ids"].get<std::vector<int32_t>>();
  }

  // Blocks `first`, `first` + 2, ...: interleaved with another sequence's, never contiguous.
  static std::vector<int32_t> blocks_from(int32_t first) {
    std::vector<int32_t> b(8);
    for (size_t i = 0; i < b.size(); ++i) b[i] = first + 2 * int32_t(i);
    return b;
  }

  // Logits at every position of `tokens`, in one pass.
  std::vector<float> one_pass(const std::vector<int32_t>& tokens, const std::vector<int32_t>& blocks) {
    Batch b;
    b.add_sequence(tokens, 0, int64_t(tokens.size()), blocks, kBlock, int64_t(tokens.size()));
    return model_->forward(b);
  }

  void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    float max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      max_ref = std::max(max_ref, std::fabs(want[i]));
      max_diff = std::max(max_diff, std::fabs(got[i] - want[i]));
    }
    EXPECT_LE(max_diff / max_ref, GetParam() ? 2e-4f : 1e-5f) << what;
  }

  ModelFiles files_;
  std::unique_ptr<Backend> be_;
  std::unique_ptr<LlamaModel> model_;
  std::vector<int32_t> ids_;
};

TEST_P(Batching, ChunkedPrefillEqualsOnePass) {
  const auto want = one_pass(ids_, blocks_from(1));
  const int64_t n_vocab = files_.config.n_vocab;
  for (int64_t chunk : {1, 7, 64}) {
    std::vector<float> got;
    for (int64_t start = 0; start < int64_t(ids_.size()); start += chunk) {
      const int64_t n = std::min<int64_t>(chunk, int64_t(ids_.size()) - start);
      Batch b;
      b.add_sequence(ids_, start, n, blocks_from(2), kBlock, n);
      const auto part = model_->forward(b);
      got.insert(got.end(), part.begin(), part.end());
    }
    ASSERT_EQ(int64_t(got.size()), int64_t(ids_.size()) * n_vocab);
    expect_close(got, want, "chunks of " + std::to_string(chunk));
  }
}

TEST_P(Batching, MixedPrefillAndDecodeEqualsSeparatePasses) {
  // Sequence A: 40 tokens already computed, now decoding its 41st. Sequence B: a prefill chunk
  // of 13 tokens from position 10 (its first 10 computed earlier). C: a fresh 5-token prompt.
  const std::vector<int32_t> a(ids_.begin(), ids_.begin() + 41), bseq(ids_.begin() + 20, ids_.begin() + 43),
      c(ids_.begin() + 50, ids_.begin() + 55);
  const auto want_a = one_pass(a, blocks_from(1));
  const auto want_b = one_pass(bseq, blocks_from(2));
  const auto want_c = one_pass(c, blocks_from(40));
  const int64_t V = files_.config.n_vocab;

  // Fresh caches for the mixed run: recompute A's first 40 and B's first 10 in their own blocks.
  for (auto [seq, n, first] : {std::tuple{&a, 40, 20}, std::tuple{&bseq, 10, 21}}) {
    Batch warm;
    warm.add_sequence(*seq, 0, n, blocks_from(first), kBlock, 1);
    model_->forward(warm);
  }
  Batch mixed;
  mixed.add_sequence(a, 40, 1, blocks_from(20), kBlock, 1);
  mixed.add_sequence(bseq, 10, 13, blocks_from(21), kBlock, 13);
  mixed.add_sequence(c, 0, 5, blocks_from(50), kBlock, 5);
  EXPECT_EQ(mixed.logits_rows.size(), 1u + 13u + 5u);
  mixed.logits_rows = {0, 5, 13, 14, 18};  // A's token; B at positions 14 and 22; C at 0 and 4
  const auto got = model_->forward(mixed);
  auto row = [&](const std::vector<float>& l, int64_t r) { return std::vector<float>(l.begin() + r * V, l.begin() + (r + 1) * V); };
  expect_close(row(got, 0), row(want_a, 40), "A decode");
  expect_close(row(got, 1), row(want_b, 14), "B chunk, position 14");
  expect_close(row(got, 2), row(want_b, 22), "B chunk, last");
  expect_close(row(got, 3), row(want_c, 0), "C first");
  expect_close(row(got, 4), row(want_c, 4), "C last");
}

INSTANTIATE_TEST_SUITE_P(Amx, Batching, testing::Values(false, true),
                         [](const testing::TestParamInfo<bool>& i) { return i.param ? "AmxOn" : "FmaOnly"; });

}  // namespace
}  // namespace herd
