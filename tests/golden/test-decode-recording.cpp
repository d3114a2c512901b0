// Decode steps recorded once and replayed (what CUDA graphs do on the GPU), checked on the CPU:
// a backend that records ops as closures and replays them stands in for the CUDA backend, so the
// model's side is proven in CI. Padded to fixed shapes, steps must give the logits of the same
// steps run as they are; a recording must not allocate, upload or read back; a step of a new
// shape, or buffers that grew, must make a new recording.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <numeric>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "model/decode-shape.h"
#include "model/llama.h"
#include "model/model-dir.h"
#ifdef HERD_TEST_CUDA
#include <cstdio>
#include <cstdlib>

#include "backend/cuda/cuda-backend.h"
#endif

namespace herd {
namespace {

// The CPU backend, plus recording: between begin_capture() and end_capture() each op is kept as a
// closure (its tensors by value: same memory) instead of run, and replay() runs them in order.
class RecordingBackend final : public Backend {
 public:
  explicit RecordingBackend(std::unique_ptr<Backend> inner) : in_(std::move(inner)) {}

  int n_recorded = 0, n_replayed = 0;

  std::string name() const override { return "recording " + in_->name(); }
  Tensor upload_weight(const TensorView& host) override { return in_->upload_weight(host); }
  Tensor alloc(DType dtype, Shape shape) override {
    refuse_while_recording("alloc");
    return in_->alloc(dtype, std::move(shape));
  }
  void write(Tensor& dst, const void* src, size_t nbytes) override {
    refuse_while_recording("write");
    in_->write(dst, src, nbytes);
  }
  void read(const Tensor& src, void* dst, size_t nbytes) override {
    refuse_while_recording("read");
    in_->read(src, dst, nbytes);
  }
  void copy_blocks(Tensor& t, const std::vector<std::pair<int32_t, int32_t>>& from_to) override {
    refuse_while_recording("copy_blocks");
    in_->copy_blocks(t, from_to);
  }
  DType kv_dtype() const override { return in_->kv_dtype(); }

  void embed(const Tensor& table, const Tensor& ids, Tensor& out) override {
    op([=, this]() mutable { in_->embed(table, ids, out); });
  }
  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override {
    op([=, this]() mutable { in_->rms_norm(x, w, eps, out); });
  }
  void add_rms_norm(Tensor& x, const Tensor& y, const Tensor& w, float eps, Tensor& out) override {
    op([=, this]() mutable { in_->add_rms_norm(x, y, w, eps, out); });
  }
  void matmul(const Tensor& x, const Tensor& w, Tensor& out) override {
    op([=, this]() mutable { in_->matmul(x, w, out); });
  }
  void matmul_shared(const Tensor& x, std::span<const MatmulOut> parts) override {
    std::vector<std::pair<Tensor, Tensor>> p;
    for (const MatmulOut& m : parts) p.emplace_back(m.w, m.out);
    op([=, this]() mutable {
      std::vector<MatmulOut> outs;
      for (auto& [w, out] : p) outs.push_back({w, out});
      in_->matmul_shared(x, outs);
    });
  }
  void rope_kv_write(Tensor& q, Tensor& k, const Tensor& v, const Tensor& pos, const Tensor& inv_freq,
                     const Tensor& slot_mapping, Tensor& k_cache, Tensor& v_cache, KvScales scales) override {
    op([=, this]() mutable { in_->rope_kv_write(q, k, v, pos, inv_freq, slot_mapping, k_cache, v_cache, scales); });
  }
  void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& qsl,
                 const Tensor& seq_lens, const Tensor& block_table, Tensor& out, KvScales scales) override {
    op([=, this]() mutable { in_->attention(q, k_cache, v_cache, qsl, seq_lens, block_table, out, scales); });
  }
  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    op([=, this]() mutable { in_->silu_mul(gate, up, out); });
  }
  void argmax(const Tensor& x, Tensor& out) override {
    op([=, this]() mutable { in_->argmax(x, out); });
  }

  bool can_capture() const override { return true; }
  bool begin_capture() override {
    recording_ = true;
    ops_.clear();
    return true;
  }
  std::unique_ptr<StepGraph> end_capture() override {
    recording_ = false;
    ++n_recorded;
    return std::make_unique<Graph>(std::move(ops_), this);
  }
  uint64_t memory_epoch() const override { return 0; }

 private:
  struct Graph final : StepGraph {
    Graph(std::vector<std::function<void()>> ops, RecordingBackend* owner) : ops(std::move(ops)), owner(owner) {}
    void replay() override {
      ++owner->n_replayed;
      for (auto& f : ops) f();
    }
    int64_t n_ops() const override { return int64_t(ops.size()); }
    std::vector<std::function<void()>> ops;
    RecordingBackend* owner;
  };
  void op(std::function<void()> f) {
    if (recording_) ops_.push_back(std::move(f));
    else f();
  }
  void refuse_while_recording(const char* what) const {
    if (recording_) throw std::logic_error(std::string(what) + " while recording a step");
  }

  std::unique_ptr<Backend> in_;
  bool recording_ = false;
  std::vector<std::function<void()>> ops_;
};

const std::string kModel = std::string(HERD_TEST_DATA) + "/models/gqa4-hd32-untied-llama3";
constexpr int32_t kBlock = 16;

TEST(DecodeShape, PadsDecodeStepsToFixedShapes) {
  auto decode_step = [](int n, int32_t len) {
    Batch b;
    std::vector<int32_t> tokens(size_t(len), 7), blocks(size_t((len + kBlock - 1) / kBlock), 3);
    for (int i = 0; i < n; ++i) b.add_sequence(tokens, len - 1, 1, blocks, kBlock, 1);
    return b;
  };
  const std::pair<int, int64_t> buckets[] = {{1, 1}, {2, 2}, {3, 4}, {4, 4}, {5, 8}, {9, 16}, {250, 256}};
  for (auto [n, want] : buckets) {
    const auto s = decode_shape(decode_step(n, 40));
    ASSERT_TRUE(s.has_value()) << n;
    EXPECT_EQ(s->n_seqs, want) << n;
    EXPECT_EQ(s->max_blocks, 8) << "3 blocks take 8 columns";
  }
  EXPECT_EQ(decode_shape(decode_step(2, 16 * 9))->max_blocks, 16);
  EXPECT_FALSE(decode_shape(decode_step(257, 40)).has_value()) << "past the largest bucket";
  Batch prefill;
  prefill.add_sequence(std::vector<int32_t>(5, 1), 0, 5, {1}, kBlock, 1);
  EXPECT_FALSE(decode_shape(prefill).has_value());
  Batch scoring = decode_step(2, 40);
  scoring.logits_rows = {1};
  EXPECT_FALSE(decode_shape(scoring).has_value()) << "not every row wanted";

  const Batch b = decode_step(3, 40);
  const Batch p = pad_decode(b, *decode_shape(b));
  EXPECT_EQ(p.n_tokens(), 4);
  EXPECT_EQ(p.query_start_loc, (std::vector<int32_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(p.seq_lens, (std::vector<int32_t>{40, 40, 40, 1}));
  EXPECT_EQ(p.slot_mapping.back(), -1) << "the padding writes no KV";
  EXPECT_EQ(p.logits_rows, (std::vector<int32_t>{0, 1, 2, 3}));
  ASSERT_EQ(p.block_table.size(), 4u * 8u);
  EXPECT_EQ(std::vector<int32_t>(p.block_table.begin(), p.block_table.begin() + 8),
            (std::vector<int32_t>{3, 3, 3, 0, 0, 0, 0, 0}));
  EXPECT_EQ(std::vector<int32_t>(p.block_table.begin() + 24, p.block_table.end()), std::vector<int32_t>(8, 0))
      << "the padding attends to the null block";
}

class DecodeRecording : public testing::Test {
 protected:
  void SetUp() override {
    files_ = load_model_files(kModel);
    std::ifstream f(std::string(HERD_TEST_DATA) + "/reference/gqa4-hd32-untied-llama3.json");
    ids_ = nlohmann::json::parse(f)["input_ids"].get<std::vector<int32_t>>();
  }

  // Sequence s owns blocks 1 + s, 1 + s + n_seqs, ...: interleaved, never contiguous.
  static std::vector<int32_t> blocks_of(int s, int n_seqs) {
    std::vector<int32_t> b(8);
    for (size_t i = 0; i < b.size(); ++i) b[i] = 1 + s + n_seqs * int32_t(i);
    return b;
  }

  // n_seqs sequences: a prompt of 10 + s tokens in one chunk each, then `steps` decode steps of all
  // of them (the tokens taken from the fixture's ids, not sampled). Returns every decode step's logits.
  std::vector<float> run(LlamaModel& m, int n_seqs, int steps) {
    m.allocate_kv(1 + 8 * n_seqs, kBlock);
    std::vector<std::vector<int32_t>> seqs;
    for (int s = 0; s < n_seqs; ++s) {
      seqs.emplace_back(ids_.begin() + s, ids_.begin() + s + 10 + s + steps);
      Batch b;
      b.add_sequence(seqs.back(), 0, 10 + s, blocks_of(s, n_seqs), kBlock, 1);
      m.forward(b);
    }
    std::vector<float> out;
    for (int t = 0; t < steps; ++t) {
      Batch b;
      for (int s = 0; s < n_seqs; ++s) b.add_sequence(seqs[size_t(s)], 10 + s + t, 1, blocks_of(s, n_seqs), kBlock, 1);
      const auto l = m.forward(b);
      EXPECT_EQ(l.size(), size_t(n_seqs) * size_t(files_.config.n_vocab));
      out.insert(out.end(), l.begin(), l.end());
    }
    return out;
  }

  ModelFiles files_;
  std::vector<int32_t> ids_;
};

TEST_F(DecodeRecording, ReplayedStepsEqualStepsRunAsTheyAre) {
  // The reference path: per-token arithmetic does not depend on the batch, so padding changes nothing.
  auto plain_be = make_cpu_backend(1, /*exact=*/true);
  auto rec_be = std::make_unique<RecordingBackend>(make_cpu_backend(1, /*exact=*/true));
  RecordingBackend& rec = *rec_be;
  LlamaModel plain(files_.config, files_.weights, *plain_be), recorded(files_.config, files_.weights, rec);
  for (int n_seqs : {1, 3, 5}) {
    const int before = rec.n_replayed;
    const auto want = run(plain, n_seqs, 6);
    const auto got = run(recorded, n_seqs, 6);
    ASSERT_EQ(got.size(), want.size());
    float max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      max_ref = std::max(max_ref, std::fabs(want[i]));
      max_diff = std::max(max_diff, std::fabs(got[i] - want[i]));
    }
    EXPECT_LE(max_diff / max_ref, 1e-6f) << n_seqs << " sequences";
    // Step 1 runs as it is, step 2 is recorded (and replayed), steps 3 to 6 replay.
    EXPECT_EQ(rec.n_replayed - before, 5) << n_seqs << " sequences";
  }
  // allocate_kv moved the caches between the runs: every run made its recording again.
  EXPECT_EQ(rec.n_recorded, 3);
  EXPECT_TRUE(recorded.records_decode());
  // The 5-sequence run's recording (the last one standing): embedding and first norm, 7 ops a layer
  // (qkv, RoPE + KV write, attention, o, add + norm, gate/up, SiLU) and the down product and next
  // add + norm, then picking rows, the last add + norm and the LM head.
  const auto ops = recorded.recorded_ops();
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops.begin()->first.n_seqs, 8);
  EXPECT_EQ(ops.begin()->second, 2 + 9 * files_.config.n_layer - 1 + 4);
}

TEST_F(DecodeRecording, GrownBuffersMakeANewRecording) {
  auto rec_be = std::make_unique<RecordingBackend>(make_cpu_backend(1, /*exact=*/true));
  RecordingBackend& rec = *rec_be;
  LlamaModel m(files_.config, files_.weights, rec);
  m.allocate_kv(32, kBlock);
  std::vector<int32_t> seq(100);
  for (size_t i = 0; i < seq.size(); ++i) seq[i] = int32_t(i * 37 % files_.config.n_vocab);
  auto decode = [&](int64_t at) {
    Batch b;
    b.add_sequence(seq, at, 1, blocks_of(0, 1), kBlock, 1);
    return m.forward(b);
  };
  Batch prompt;
  prompt.add_sequence(seq, 0, 20, blocks_of(0, 1), kBlock, 1);
  m.forward(prompt);
  decode(20);
  decode(21);  // recorded
  decode(22);
  EXPECT_EQ(rec.n_recorded, 1);
  // A longer chunk than any before grows the activations: the recording read the old ones.
  Batch chunk;
  chunk.add_sequence(seq, 23, 60, blocks_of(0, 1), kBlock, 1);
  m.forward(chunk);
  const auto got = decode(83);
  EXPECT_EQ(rec.n_recorded, 2) << "recorded again after the buffers moved";
  auto plain_be = make_cpu_backend(1, /*exact=*/true);
  LlamaModel plain(files_.config, files_.weights, *plain_be);
  plain.allocate_kv(32, kBlock);
  Batch all;
  all.add_sequence(seq, 0, 84, blocks_of(0, 1), kBlock, 1);
  const auto want = plain.forward(all);
  ASSERT_EQ(got.size(), want.size());
  float max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(want[i]));
    max_diff = std::max(max_diff, std::fabs(got[i] - want[i]));
  }
  EXPECT_LE(max_diff / max_ref, 1e-5f);
}

TEST_F(DecodeRecording, KeepsTheMostRecentlyUsedRecordings) {
  // 70 shapes: every bucket from 256 sequences down to 1, at table widths 8 and 16, each run twice
  // (its second step records); largest first, so that no buffer grows and every recording stays
  // valid. The values do not matter here: every sequence decodes over the same blocks.
  auto rec_be = std::make_unique<RecordingBackend>(make_cpu_backend(1, /*exact=*/true));
  LlamaModel m(files_.config, files_.weights, *rec_be);
  m.allocate_kv(16, kBlock);
  const std::vector<int32_t> tokens(200, 5);
  std::vector<int32_t> blocks(13);
  std::iota(blocks.begin(), blocks.end(), 1);
  std::vector<int> buckets = {1, 2, 4};
  for (int n = 8; n <= 256; n += 8) buckets.push_back(n);
  int n_shapes = 0;
  for (int32_t len : {100, 200})
    for (auto it = buckets.rbegin(); it != buckets.rend(); ++it) {
      const int n = *it;
      for (int step = 0; step < 2; ++step) {
        Batch b;
        for (int s = 0; s < n; ++s) b.add_sequence(tokens, len - 1, 1, blocks, kBlock, 1);
        m.forward(b);
      }
      ++n_shapes;
    }
  EXPECT_EQ(n_shapes, 70);
  const auto ops = m.recorded_ops();
  EXPECT_EQ(ops.size(), 48u);
  EXPECT_TRUE(ops.contains(DecodeShape{1, 16})) << "the latest shape is kept";
  EXPECT_FALSE(ops.contains(DecodeShape{256, 8})) << "the first is dropped";
}

#ifdef HERD_TEST_CUDA
// The same steps on the GPU with CUDA graphs (the default) and without (HERD_CUDA_GRAPHS=off). Padding
// changes the attention kernel's key splits and cuBLAS's choices for the padded rows' products, so
// the two agree to f32 rounding, not bit for bit. Prints each recording's launches per decode step.
TEST_F(DecodeRecording, CudaGraphsEqualStepsRunAsTheyAre) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  setenv("HERD_CUDA_GRAPHS", "off", 1);
  auto eager_be = make_cuda_backend(0);
  unsetenv("HERD_CUDA_GRAPHS");
  auto graph_be = make_cuda_backend(0);
  LlamaModel eager(files_.config, files_.weights, *eager_be), graphed(files_.config, files_.weights, *graph_be);
  ASSERT_FALSE(eager.records_decode());
  ASSERT_TRUE(graphed.records_decode());
  for (int n_seqs : {1, 3, 5, 12}) {
    const auto want = run(eager, n_seqs, 6);
    const auto got = run(graphed, n_seqs, 6);
    ASSERT_EQ(got.size(), want.size());
    float max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      max_ref = std::max(max_ref, std::fabs(want[i]));
      max_diff = std::max(max_diff, std::fabs(got[i] - want[i]));
    }
    EXPECT_LE(max_diff / max_ref, 1e-3f) << n_seqs << " sequences";
    ASSERT_TRUE(graphed.records_decode()) << "a recording failed at " << n_seqs << " sequences";
    for (const auto& [shape, ops] : graphed.recorded_ops())
      std::printf("CUDA graph of a decode step, %lld sequences (%d layers): %lld launches\n",
                  static_cast<long long>(shape.n_seqs), int(files_.config.n_layer), static_cast<long long>(ops));
  }
}
#endif

}  // namespace
}  // namespace herd
