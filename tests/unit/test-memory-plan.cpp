// The memory planner (engine/memory-plan.h, herd/memory-plan.h) against independent numbers: the
// published config.json values and parameter counts of Llama 3.1 (Meta's model cards; test-config.cpp
// checks models/ against them), KV bytes per token worked by hand, the tensor bytes of real checkpoint
// files, and deployments whose fit each test decides with its own arithmetic before asking the plan.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "common/check.h"
#include "common/gguf-file.h"
#include "engine/memory-plan.h"
#include "herd/memory-plan.h"

namespace herd {
namespace {

const std::string kRoot = HERD_SOURCE_DIR;
const std::string kData = HERD_TEST_DATA;
constexpr int64_t kGiB = int64_t(1) << 30;
// An "80 GB" card: an A100 80GB has 80 GiB, an H100 80GB reports about 79.6 GiB to CUDA.
constexpr int64_t kCard80 = 80 * kGiB;
constexpr int64_t kContext = 131072;

// Meta's model cards (the sums of every tensor's elements).
constexpr int64_t kParams8b = 8030261248, kParams70b = 70553706496, kParams405b = 405853388800;

MemoryPlan plan(const std::string& model, const std::string& weights, int gpus, int64_t memory,
                int64_t context = 0, int tp = 0) {
  MemoryPlanOptions o;
  o.model = model;
  o.weight_dtype = weights;
  o.n_gpus = gpus;
  o.tensor_parallel = tp;
  o.gpu_memory = memory;
  o.context = context;
  MemoryPlan p;
  const Status s = plan_memory(o, &p);
  EXPECT_TRUE(s.is_ok()) << s.message();
  return p;
}

// Full sequences of ctx tokens in kv_space bytes, in blocks of 16 tokens less the null block.
int64_t sequences(int64_t kv_space, int64_t kv_per_token, int64_t ctx) {
  if (kv_space <= 0) return 0;
  const int64_t blocks = std::max<int64_t>(0, kv_space / (kv_per_token * 16) - 1);
  return blocks / ((ctx + 15) / 16);
}

// The workspace is an estimate; whatever it is, it must stay in this band for the verdicts below,
// which are checked at both of its ends.
constexpr int64_t kWorkspaceLow = kGiB, kWorkspaceHigh = 3 * kGiB;

// --- Presets and KV bytes

TEST(MemoryPlan, PresetsAreThePublishedConfigs) {
  struct Published {
    const char* name;
    int64_t n_layer, n_embd, n_ff, n_head, n_params;
  };
  // meta-llama/Llama-3.1-{8B,70B,405B} config.json: num_hidden_layers, hidden_size,
  // intermediate_size, num_attention_heads; all have 8 KV heads, head_dim 128, vocab 128256,
  // max_position_embeddings 131072, untied embeddings.
  const Published published[] = {{"llama-3.1-8b", 32, 4096, 14336, 32, kParams8b},
                                 {"llama-3.1-70b", 80, 8192, 28672, 64, kParams70b},
                                 {"llama-3.1-405b", 126, 16384, 53248, 128, kParams405b}};
  EXPECT_EQ(llama_preset_names(), (std::vector<std::string>{"llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b"}));
  EXPECT_EQ(memory_plan_presets(), llama_preset_names());
  for (const Published& m : published) {
    const auto c = llama_preset(m.name);
    ASSERT_TRUE(c) << m.name;
    EXPECT_EQ(c->n_layer, m.n_layer) << m.name;
    EXPECT_EQ(c->n_embd, m.n_embd) << m.name;
    EXPECT_EQ(c->n_ff, m.n_ff) << m.name;
    EXPECT_EQ(c->n_head, m.n_head) << m.name;
    EXPECT_EQ(c->n_head_kv, 8) << m.name;
    EXPECT_EQ(c->head_dim, 128) << m.name;
    EXPECT_EQ(c->n_vocab, 128256) << m.name;
    EXPECT_EQ(c->n_ctx_train, kContext) << m.name;
    EXPECT_FALSE(c->tied_embeddings) << m.name;
    validate_config(*c, m.name);
    // The same as the preset file of models/, which the model-config tests hold to llama-models.
    const std::string path = kRoot + "/models/" + m.name + ".json";
    const ModelConfig f = parse_hf_config(read_text_file(path), path);
    EXPECT_EQ(std::tie(c->n_vocab, c->n_embd, c->n_ff, c->n_layer, c->n_head, c->n_head_kv, c->head_dim, c->n_ctx_train),
              std::tie(f.n_vocab, f.n_embd, f.n_ff, f.n_layer, f.n_head, f.n_head_kv, f.head_dim, f.n_ctx_train));
    ASSERT_TRUE(c->rope_scaling && f.rope_scaling);
    EXPECT_EQ(c->rope_scaling->factor, f.rope_scaling->factor);
    EXPECT_EQ(c->rope_theta, f.rope_theta);
    // BF16 at one rank: two bytes of every parameter.
    EXPECT_EQ(plan(m.name, "bf16", 1, 1024 * kGiB).weight_bytes, 2 * m.n_params) << m.name;
  }
  EXPECT_FALSE(llama_preset("llama-3.1-7b"));
}

TEST(MemoryPlan, KvBytesPerTokenByHand) {
  const ModelConfig c8 = *llama_preset("llama-3.1-8b"), c70 = *llama_preset("llama-3.1-70b"),
                    c405 = *llama_preset("llama-3.1-405b");
  // 2 (K, V) x layers x KV heads x 128 x 2 bytes: 128 KiB, 320 KiB and 504 KiB per token in BF16.
  EXPECT_EQ(kv_bytes_per_token(c8, 2), 131072);
  EXPECT_EQ(kv_bytes_per_token(c70, 2), 327680);
  EXPECT_EQ(kv_bytes_per_token(c405, 2), 516096);
  // Split over ranks: 8 KV heads over 2 and 8 ranks.
  EXPECT_EQ(kv_bytes_per_token(c70, 2, 2), 2 * 80 * 4 * 128 * 2);
  EXPECT_EQ(kv_bytes_per_token(c405, 2, 8), 2 * 126 * 1 * 128 * 2);
  // 16 ranks over 8 KV heads: one head each, replicated on two ranks, so no smaller than at 8.
  EXPECT_EQ(kv_bytes_per_token(c405, 2, 16), 2 * 126 * 1 * 128 * 2);
  EXPECT_EQ(kv_bytes_per_token(c8, 2, 32), 2 * 32 * 1 * 128 * 2);
  // FP8 and F32 elements.
  EXPECT_EQ(kv_bytes_per_token(c8, 1), 65536);
  EXPECT_EQ(kv_bytes_per_token(c8, 4), 262144);
  // 3 divides neither the heads nor the KV heads.
  try {
    kv_bytes_per_token(c8, 2, 3);
    ADD_FAILURE() << "TP 3 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_input);
    EXPECT_NE(std::string(e.what()).find("tensor-parallel degree 3"), std::string::npos) << e.what();
  }
}

// --- The engine's KV pool

TEST(MemoryPlan, EnginePoolSizeByHand) {
  const ModelConfig c = *llama_preset("llama-3.1-8b");
  const int64_t block = 131072 * 16;  // 2 MiB: 16 tokens of 128 KiB
  // kv_memory wins: 1 GiB is 512 blocks, + the null block.
  KvPool p = size_kv_pool(c, DType::bf16, 100 * kGiB, kGiB, 0.5, 16);
  EXPECT_EQ(p.bytes_per_token, 131072);
  EXPECT_EQ(p.n_blocks, 513);
  // Half of 10 GiB free: 2560 blocks.
  EXPECT_EQ(size_kv_pool(c, DType::bf16, 10 * kGiB, 0, 0.5, 16).n_blocks, 5 * kGiB / block + 1);
  // Half of 1 TiB is more than four full contexts (4 x 131072 x 128 KiB = 64 GiB): capped there.
  EXPECT_EQ(size_kv_pool(c, DType::bf16, 1024 * kGiB, 0, 0.5, 16).n_blocks, 64 * kGiB / block + 1);
  // No free-memory figure (the CPU backend): 1 GiB.
  EXPECT_EQ(size_kv_pool(c, DType::bf16, 0, 0, 0.5, 16).n_blocks, 513);
  // Two ranks hold half the KV heads each: twice the blocks in the same budget.
  p = size_kv_pool(c, DType::bf16, 0, kGiB, 0.5, 16, 2);
  EXPECT_EQ(p.bytes_per_token, 65536);
  EXPECT_EQ(p.n_blocks, 1025);
  // Block ids stay within int32: at most INT32_MAX / block_size - 1 blocks.
  ModelConfig tiny = c;
  tiny.n_layer = 1;
  tiny.n_head = tiny.n_head_kv = 1;
  tiny.head_dim = 2;
  EXPECT_EQ(size_kv_pool(tiny, DType::f32, 0, int64_t(1) << 40, 0.5, 16).n_blocks, INT32_MAX / 16 - 1 + 1);
  // A budget smaller than one block.
  try {
    size_kv_pool(c, DType::bf16, 0, 1 << 20, 0.5, 16);
    ADD_FAILURE() << "1 MiB accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "a KV memory budget of 1048576 bytes holds no block of 16 tokens (2097152 bytes); raise it");
  }
}

// --- Published figures

TEST(MemoryPlan, Llama8bBf16At128kFitsOneCard) {
  const MemoryPlan p = plan("llama-3.1-8b", "bf16", 1, kCard80);
  const int64_t budget = int64_t(0.9 * double(kCard80)), weights = 2 * kParams8b;  // 16.06 GB
  EXPECT_EQ(p.budget_bytes, budget);
  EXPECT_EQ(p.weight_bytes, weights);
  EXPECT_EQ(p.kv_bytes_per_token, 131072);
  ASSERT_GE(p.workspace_bytes, kWorkspaceLow);
  ASSERT_LE(p.workspace_bytes, kWorkspaceHigh);
  // 72 GiB - 16.06 GB - at most 3 GiB leaves about 51 GiB: three 128K contexts of 16 GiB each.
  EXPECT_EQ(sequences(budget - weights - kWorkspaceHigh, 131072, kContext), 3);
  EXPECT_EQ(sequences(budget - weights - kWorkspaceLow, 131072, kContext), 3);
  EXPECT_EQ(p.n_sequences, sequences(budget - weights - p.workspace_bytes, 131072, kContext));
  EXPECT_TRUE(p.fits) << p.verdict;
  EXPECT_EQ(p.kv_cache_bytes, budget - weights - p.workspace_bytes);
  EXPECT_EQ(p.kv_tokens, ((budget - weights - p.workspace_bytes) / (131072 * 16) - 1) * 16);
}

TEST(MemoryPlan, Llama70bBf16NeedsTwoCards) {
  const int64_t budget = int64_t(0.9 * double(kCard80)), norms = (2 * 80 + 1) * 8192;
  // One card: 141 GB of weights against a budget of 72 GiB, whatever the workspace.
  MemoryPlan p = plan("llama-3.1-70b", "bf16", 1, kCard80);
  EXPECT_EQ(p.weight_bytes, 2 * kParams70b);
  EXPECT_GT(p.weight_bytes, budget);
  EXPECT_FALSE(p.fits);
  EXPECT_EQ(p.kv_tokens, 0);
  EXPECT_NE(p.verdict.find("does not fit: the weights"), std::string::npos) << p.verdict;

  // Two: each holds half of every matrix (8 KV heads split in 4 and 4) and all the norms.
  const int64_t weights2 = (kParams70b - norms) * 2 / 2 + norms * 2;  // 70.55 GB
  const int64_t kv2 = 2 * 80 * 4 * 128 * 2;                           // 160 KiB per token per rank
  p = plan("llama-3.1-70b", "bf16", 2, kCard80);
  EXPECT_EQ(p.weight_bytes, weights2);
  EXPECT_EQ(p.kv_bytes_per_token, kv2);
  ASSERT_GE(p.workspace_bytes, kWorkspaceLow);
  ASSERT_LE(p.workspace_bytes, kWorkspaceHigh);
  // 77.31 GB - 70.55 GB - 1 to 3 GiB: 3.5 to 5.7 GB of KV cache, 21K to 35K tokens: no 128K
  // sequence, but an 8K one fits at either end.
  EXPECT_EQ(sequences(budget - weights2 - kWorkspaceLow, kv2, kContext), 0);
  EXPECT_GE(sequences(budget - weights2 - kWorkspaceHigh, kv2, 8192), 2);
  EXPECT_FALSE(p.fits);
  EXPECT_EQ(p.kv_tokens, ((budget - weights2 - p.workspace_bytes) / (kv2 * 16) - 1) * 16);
  EXPECT_NE(p.verdict.find("does not fit at this context"), std::string::npos) << p.verdict;
  p = plan("llama-3.1-70b", "bf16", 2, kCard80, 8192);
  EXPECT_TRUE(p.fits) << p.verdict;
  EXPECT_EQ(p.n_sequences, sequences(budget - weights2 - p.workspace_bytes, kv2, 8192));

  // Four: 35.3 GB of weights each, and 128K contexts fit.
  p = plan("llama-3.1-70b", "bf16", 4, kCard80);
  const int64_t weights4 = (kParams70b - norms) * 2 / 4 + norms * 2, kv4 = 2 * 80 * 2 * 128 * 2;
  EXPECT_EQ(p.weight_bytes, weights4);
  EXPECT_GE(sequences(budget - weights4 - kWorkspaceHigh, kv4, kContext), 3);
  EXPECT_EQ(p.n_sequences, sequences(budget - weights4 - p.workspace_bytes, kv4, kContext));
  EXPECT_TRUE(p.fits);
}

TEST(MemoryPlan, Llama405bFp8OnEightCardsHoldsTwoOrThree128kSequences) {
  // FP8 as vLLM and NVIDIA's checkpoint quantize it: the layers' matrices one byte per parameter;
  // the embedding, LM head and norms stay BF16.
  const int64_t embd = 128256 * 16384, norms = (2 * 126 + 1) * 16384;
  const int64_t matrices = kParams405b - 2 * embd - norms;           // 401.6 G parameters
  const int64_t weights = matrices / 8 + 2 * embd * 2 / 8 + norms * 2;  // 51.26 GB per rank
  const int64_t kv = 2 * 126 * 1 * 128 * 2;                          // one KV head per rank: 63 KiB
  const int64_t budget = int64_t(0.9 * double(kCard80));
  const MemoryPlan p = plan("llama-3.1-405b", "fp8", 8, kCard80);
  EXPECT_EQ(p.weight_bytes, weights);
  EXPECT_EQ(p.kv_bytes_per_token, kv);
  EXPECT_EQ(p.n_head_kv_rank, 1);
  ASSERT_GE(p.workspace_bytes, kWorkspaceLow);
  ASSERT_LE(p.workspace_bytes, kWorkspaceHigh);
  // 77.31 GB - 51.26 GB - 1 to 3 GiB = 22.8 to 24.9 GB; a 128K sequence takes 8.46 GB.
  EXPECT_EQ(sequences(budget - weights - kWorkspaceHigh, kv, kContext), 2);
  EXPECT_LE(sequences(budget - weights - kWorkspaceLow, kv, kContext), 3);
  EXPECT_EQ(p.n_sequences, sequences(budget - weights - p.workspace_bytes, kv, kContext));
  EXPECT_GE(p.n_sequences, 2);
  EXPECT_LE(p.n_sequences, 3);
  EXPECT_TRUE(p.fits);
}

TEST(MemoryPlan, Llama405bBf16NeedsSixteenCards) {
  const int64_t norms = (2 * 126 + 1) * 16384, kv_params = int64_t(126) * 2 * 1024 * 16384;
  const int64_t budget = int64_t(0.9 * double(kCard80));
  // Eight: 101.5 GB of weights per card, more than the card.
  MemoryPlan p = plan("llama-3.1-405b", "bf16", 8, kCard80);
  EXPECT_EQ(p.weight_bytes, (kParams405b - norms) * 2 / 8 + norms * 2);
  EXPECT_GT(p.weight_bytes, kCard80);
  EXPECT_FALSE(p.fits);
  // Sixteen: each rank 1/16 of every matrix but k and v, of which it holds one of 8 heads (1/8).
  p = plan("llama-3.1-405b", "bf16", 16, kCard80);
  const int64_t weights = ((kParams405b - norms - kv_params) / 16 + kv_params / 8) * 2 + norms * 2;  // 51.27 GB
  const int64_t kv = 2 * 126 * 1 * 128 * 2;
  EXPECT_EQ(p.weight_bytes, weights);
  EXPECT_EQ(p.kv_bytes_per_token, kv);
  EXPECT_EQ(sequences(budget - weights - kWorkspaceHigh, kv, kContext), 2);
  EXPECT_EQ(p.n_sequences, sequences(budget - weights - p.workspace_bytes, kv, kContext));
  EXPECT_TRUE(p.fits) << p.verdict;
  EXPECT_NE(p.rows[0].arithmetic.find("1 of 8 KV heads, each held by 2 ranks"), std::string::npos);
}

// --- Checkpoint files

// Bytes of each tensor in a safetensors file, from its header.
std::map<std::string, int64_t> safetensors_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  f.read(header.data(), std::streamsize(n));
  std::map<std::string, int64_t> out;
  const nlohmann::json tensors = nlohmann::json::parse(header);
  for (auto it = tensors.begin(); it != tensors.end(); ++it)
    if (it.key() != "__metadata__") {
      const nlohmann::json& at = it.value().at("data_offsets");
      out[it.key()] = at.at(1).get<int64_t>() - at.at(0).get<int64_t>();
    }
  return out;
}

TEST(MemoryPlan, WeightsOfACheckpointAreItsTensorBytes) {
  // 8 query heads over 4 KV heads, untied, BF16. Each rank holds 1/tp of every matrix (k and v
  // 1/4 past 4 ranks: one KV head each) and every norm whole.
  const std::string dir = kData + "/models/gqa8x4-hd16-untied-llama3";
  const auto bytes = safetensors_bytes(dir + "/model.safetensors");
  for (int tp : {1, 2, 4, 8}) {
    int64_t expect = 0;
    for (const auto& [name, b] : bytes) {
      const bool norm = name.find("norm") != std::string::npos;
      const bool kv = name.find("k_proj") != std::string::npos || name.find("v_proj") != std::string::npos;
      expect += norm ? b : kv ? b / std::min(tp, 4) : b / tp;
    }
    EXPECT_EQ(plan(dir, "stored", tp, kGiB).weight_bytes, expect) << "tp " << tp;
  }
  // Tied: the file has no LM head, and the plan counts none.
  int64_t tied = 0;
  for (const auto& [name, b] : safetensors_bytes(kData + "/models/mha-hd128-tied/model.safetensors")) tied += b;
  const MemoryPlan p = plan(kData + "/models/mha-hd128-tied", "stored", 1, kGiB);
  EXPECT_EQ(p.weight_bytes, tied);
  EXPECT_EQ(p.weight_dtype, "as stored: BF16");
}

TEST(MemoryPlan, QuantizedWeightsCountTheirBlocks) {
  // Q4_K_M mixes Q4_K and Q6_K blocks (144 and 210 bytes per 256 elements) and keeps norms F32.
  const std::string path = kData + "/gguf/quant-Q4_K_M.gguf";
  const GgufFile file(path);
  int64_t expect = 0;
  for (const GgufTensorInfo& t : file.tensors()) {
    if (t.name == "rope_freqs.weight") continue;  // RoPE's frequency factors, a config table, not a weight
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    const int64_t per_block = t.dtype == DType::q4_k ? 144 : t.dtype == DType::q6_k ? 210 : 0;
    ASSERT_TRUE(per_block > 0 || t.dtype == DType::f32) << t.name;
    expect += per_block > 0 ? numel / 256 * per_block : numel * 4;
  }
  const MemoryPlan p = plan(path, "stored", 1, kGiB);
  EXPECT_EQ(p.weight_bytes, expect);
  EXPECT_EQ(p.weight_dtype, "as stored: Q4_K, Q6_K");
  EXPECT_EQ(p.rows.back().item, "note");  // herd's CUDA backend holds them as BF16 today
}

// --- Refusals

TEST(MemoryPlan, BadOptionsNameTheField) {
  auto refused = [](MemoryPlanOptions o, const std::string& says) {
    if (o.model.empty()) o.model = "llama-3.1-8b";
    if (o.gpu_memory == 0) o.gpu_memory = kCard80;
    MemoryPlan p;
    const Status s = plan_memory(o, &p);
    EXPECT_EQ(s.code(), Status::Code::invalid_input) << says;
    EXPECT_NE(s.message().find(says), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find('\n'), std::string::npos);
  };
  MemoryPlanOptions o;
  o.n_gpus = 4, o.tensor_parallel = 3;
  refused(o, "tensor-parallel groups of 3");
  o = {};
  o.n_gpus = 3;
  refused(o, "tensor-parallel degree 3");
  o = {};
  o.context = kContext + 1;
  refused(o, "context (131073 tokens)");
  o = {};
  o.gpu_util = 0;
  refused(o, "gpu_util");
  o = {};
  o.gpu_memory = -1;
  refused(o, "gpu_memory");
  o = {};
  o.weight_dtype = "int4";
  refused(o, "weight_dtype \"int4\"");
  o = {};
  o.kv_dtype = "q8";
  refused(o, "kv_dtype \"q8\"");
  o = {};
  o.block_size = 24;
  refused(o, "power of two");
  o = {};
  o.model = kData + "/models/no-such-model";
  MemoryPlan p;
  EXPECT_FALSE(plan_memory(o, &p).is_ok());
}

}  // namespace
}  // namespace herd
