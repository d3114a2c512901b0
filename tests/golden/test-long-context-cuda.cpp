// Long context on the GPU against the CPU backend: a model of Llama 3.1 8B's width (2 of its layers,
// a 2,048-token vocabulary, random BF16 weights) reads a 32,773-token prompt in chunks of 4,096, and
// the logits of its last positions on CUDA (tensor-core prefill attention, bf16 KV cache) must be
// the CPU's within BF16 rounding. Positions past 32K are where RoPE's llama3 scaling, the paged
// cache's block table and the attention kernels' key splits are all at full stretch.
// Skips without a device. The CPU side takes a minute or two on 16 cores (label longctx: a step of
// its own in tools/gpu-check).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "backend/cuda/cuda-backend.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/synthetic.h"

namespace herd {
namespace {

constexpr int32_t kBlock = 16;

// The logits of the prompt's last n_last positions, the prompt run in chunks.
std::vector<float> last_logits(LlamaModel& m, const std::vector<int32_t>& prompt, int64_t chunk, int64_t n_last) {
  const int64_t n = int64_t(prompt.size());
  std::vector<int32_t> blocks(size_t((n + kBlock - 1) / kBlock));
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = int32_t(1 + (i * 7919) % blocks.size());  // scattered
  m.allocate_kv(int32_t(blocks.size() + 1), kBlock);
  std::vector<float> out;
  for (int64_t at = 0; at < n; at += chunk) {
    const int64_t len = std::min(chunk, n - at);
    Batch b;
    b.add_sequence(prompt, at, len, blocks, kBlock, std::max<int64_t>(0, at + len - (n - n_last)));
    out = m.forward(b);
  }
  return out;
}

TEST(LongContextCuda, LastLogitsAfter32KTokensMatchTheCpu) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  std::ifstream f(std::string(HERD_SOURCE_DIR) + "/models/llama-3.1-8b.json");
  std::stringstream text;
  text << f.rdbuf();
  ModelConfig c = parse_hf_config(text.str(), "models/llama-3.1-8b.json");
  c.n_layer = 2;
  c.n_vocab = 2048;
  c.bos_id = 1;  // the real ids lie past the small vocabulary
  c.eos_ids = {2};
  const ModelFiles files = make_synthetic_files(c, DType::bf16, 11);
  std::vector<int32_t> prompt(32773);
  std::mt19937 rng(3);
  for (int32_t& t : prompt) t = int32_t(rng() % uint32_t(c.n_vocab));

  const int64_t n_last = 4;
  auto cpu = make_cpu_backend(0);
  LlamaModel on_cpu(c, files.weights, *cpu);
  const auto want = last_logits(on_cpu, prompt, 4096, n_last);
  auto gpu = make_cuda_backend(0);
  LlamaModel on_gpu(c, files.weights, *gpu);
  const auto got = last_logits(on_gpu, prompt, 4096, n_last);
  ASSERT_EQ(got.size(), size_t(n_last * c.n_vocab));
  ASSERT_EQ(want.size(), got.size());
  // Per position: the largest difference against the largest logit, and the two rows' cosine. BF16
  // products, KV and attention probabilities on the GPU, an f16 KV cache and f32 products on the CPU:
  // a few 1e-3 of the scale; a wrong position, block or RoPE scaling leaves the rows uncorrelated.
  for (int64_t p = 0; p < n_last; ++p) {
    double max_ref = 0, max_diff = 0, dot = 0, gg = 0, ww = 0;
    for (int64_t v = 0; v < c.n_vocab; ++v) {
      const double g = got[size_t(p * c.n_vocab + v)], w = want[size_t(p * c.n_vocab + v)];
      max_ref = std::max(max_ref, std::fabs(w));
      max_diff = std::max(max_diff, std::fabs(g - w));
      dot += g * w;
      gg += g * g;
      ww += w * w;
    }
    const double cosine = dot / std::sqrt(gg * ww);
    std::printf("position %lld: max |cuda - cpu| = %.4f of max |logit| %.3f, cosine %.6f\n",
                static_cast<long long>(int64_t(prompt.size()) - n_last + p), max_diff, max_ref, cosine);
    EXPECT_LE(max_diff, 3e-2 * max_ref) << "position " << p;
    EXPECT_GE(cosine, 0.999) << "position " << p;
  }
}

}  // namespace
}  // namespace herd
