// The CPU backend's matrix products on the fast kernels (cpu-kernels.h): out[n, m] = x[n, k] *
// w[m, k]^T for one or several weights that share x (q, k and v; gate and up), in one parallel
// loop, with x quantized to 8-bit blocks once for all the quantized weights among them.
//
// Weights of a type the level has panel kernels for (PanelKernel) are repacked into panels at
// their first product and multiplied panel by panel, every token of the step against each panel
// while it is in cache. The others run in chunks of rows: float rows through the multi-token
// kernels where the level has them (or AMX tiles, where the processor has them), quantized rows
// four at a time where it can.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu-kernels.h"
#include "common/threadpool.h"

namespace herd {

class FastMatmul {
 public:
  FastMatmul(ThreadPool& pool, CpuKernels kernels) : pool_(pool), k_(kernels) {}

  CpuLevel level() const { return k_.level; }
  bool amx() const { return k_.amx; }
  // Marks w, a weight whose contents never change while it lives, as one to repack for the panel
  // kernels when it first meets a matmul (a weight only ever embedded is never repacked).
  void add_weight(const Tensor& w);
  // x: [n, k] f32; each part's w: [m_i, k] of any stored type, out: [n, m_i] f32.
  void run(const Tensor& x, std::span<const MatmulOut> parts);

 private:
  // A weight's panels, [ceil(m / kPanelRows), panel_bytes], or none yet.
  struct Packed {
    std::weak_ptr<void> owner;  // the weight's storage: an entry whose owner differs is stale
    std::shared_ptr<uint8_t> panels;
    size_t panel_bytes = 0;
  };
  // An F16 or BF16 weight that AMX tiles multiply with n_tok tokens.
  bool amx_takes(const Tensor& w, int64_t n_tok) const;
  // The panels of w, packed now if w was added and has none yet; null for other weights.
  const Packed* panels_of(const Tensor& w);

  ThreadPool& pool_;
  const CpuKernels k_;
  std::vector<Q8Block> q8_;  // x quantized, [n, k / 32], when a weight is quantized
  std::vector<uint16_t> amx_x_;  // x split into BF16 tiles, when a weight is F16 or BF16 and AMX is on
  std::unordered_map<const void*, Packed> packed_;  // by the weight's data
};

}  // namespace herd
