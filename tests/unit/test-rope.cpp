// RoPE frequencies and rotation against rope_llama3.json (derived in float64 from llama-models'
// apply_scaling and transformers' _compute_llama3_parameters; tests/data/README.md).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "model/rope.h"
#include "model/weights.h"

namespace herd {
namespace {

nlohmann::json rope_vectors() {
  std::ifstream f(std::string(HERD_TEST_DATA) + "/rope_llama3.json");
  return nlohmann::json::parse(f);
}

ModelConfig rope_config(int64_t head_dim, float theta, const nlohmann::json& scaling) {
  ModelConfig c;
  c.head_dim = head_dim;
  c.rope_theta = theta;
  RopeScaling s;
  s.factor = scaling["factor"];
  s.low_freq_factor = scaling["low_freq_factor"];
  s.high_freq_factor = scaling["high_freq_factor"];
  s.original_max_position = scaling.value("original_max_position_embeddings", 8192);
  c.rope_scaling = s;
  return c;
}

TEST(Rope, ScaledFrequenciesMatchTheReferenceTables) {
  const auto j = rope_vectors();
  for (const auto& [name, cfg] : j["configs"].items()) {
    const ModelConfig c = rope_config(cfg["head_dim"], cfg["rope_theta"], cfg);
    const std::vector<float> f = rope_inv_freq(c);
    ASSERT_EQ(f.size(), cfg["bands"].size()) << name;
    for (const auto& band : cfg["bands"]) {
      const size_t i = band["i"];
      const float want = band["scaled_inv_freq_f32"];
      EXPECT_NEAR(f[i], want, std::fabs(want) * 1.2e-7f) << name << " pair " << i << " (" << band["band"] << ")";
    }
  }
}

TEST(Rope, UnscaledWhenNoScaling) {
  ModelConfig c;
  c.head_dim = 128;
  c.rope_theta = 500000.f;
  const auto f = rope_inv_freq(c);
  EXPECT_EQ(f[0], 1.f);
  EXPECT_NEAR(f[63], std::pow(500000.0, -126.0 / 128.0), 1e-12);
}

// The head_dim-8 worked example: Meta's interleaved vector, permuted to half-split order by the
// loader's permutation and rotated by the CPU backend, equals the reference's rotated HF layout.
TEST(Rope, PermutationAndRotationMatchTheWorkedExample) {
  const auto ex = rope_vectors()["permutation_example_head_dim8"];
  const ModelConfig c = rope_config(8, ex["rope_theta"], ex["llama3_scaling"]);
  const std::vector<float> x_meta = ex["x_meta_layout"].get<std::vector<float>>();
  std::vector<float> x_hf(8);
  permute_interleaved_to_half_split(reinterpret_cast<const uint8_t*>(x_meta.data()),
                                    reinterpret_cast<uint8_t*>(x_hf.data()), 1, 8, sizeof(float));
  EXPECT_EQ(x_hf, ex["x_hf_layout"].get<std::vector<float>>());

  auto be = make_cpu_backend(1, /*exact=*/true);
  Tensor x = be->alloc(DType::f32, {1, 1, 8});
  be->write(x, x_hf.data(), 32);
  const int32_t pos = ex["pos"];
  Tensor p = be->alloc(DType::i32, {1});
  be->write(p, &pos, 4);
  const auto f = rope_inv_freq(c);
  Tensor freq = be->alloc(DType::f32, {4});
  be->write(freq, f.data(), 16);
  // RoPE through the fused op, with no slot to write: one throwaway KV head, one cache block.
  Tensor k = be->alloc(DType::f32, {1, 1, 8}), v = be->alloc(DType::f32, {1, 1, 8});
  Tensor kc = be->alloc(DType::f32, {1, 1, 1, 8}), vc = be->alloc(DType::f32, {1, 1, 1, 8});
  const int32_t no_slot = -1;
  Tensor slots = be->alloc(DType::i32, {1});
  be->write(slots, &no_slot, 4);
  be->rope_kv_write(x, k, v, p, freq, slots, kc, vc);
  std::vector<float> got(8);
  be->read(x, got.data(), 32);
  const auto want = ex["rotated_hf_layout"].get<std::vector<double>>();
  for (size_t i = 0; i < 8; ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << i;
}

// Angles at long positions: cos/sin of pos * f for Llama 3.1's table, within float32 angle error.
TEST(Rope, AnglesAtLongPositions) {
  const auto j = rope_vectors();
  const ModelConfig c = rope_config(128, 500000.f, j["configs"]["llama3.1 (head_dim 128, factor 8)"]);
  const auto f = rope_inv_freq(c);
  for (const auto& a : j["angle_examples_llama3.1"]) {
    const int i = a["i"], pos = a["pos"];
    const float angle = float(pos) * f[size_t(i)];
    // One f32 ulp of the angle (docs/llama31.md, "RoPE numerics") bounds the error.
    const double tol = 4.0 * std::ldexp(1.0, std::ilogb(double(a["angle"])) - 23) + 1e-6;
    EXPECT_NEAR(std::cos(angle), double(a["cos"]), tol) << "pos " << pos << " pair " << i;
    EXPECT_NEAR(std::sin(angle), double(a["sin"]), tol) << "pos " << pos << " pair " << i;
  }
}

}  // namespace
}  // namespace herd
