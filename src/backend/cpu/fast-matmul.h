// The CPU backend's matrix products on the fast kernels (cpu-kernels.h): out[n, m] = x[n, k] *
// w[m, k]^T for one or several weights that share x (q, k and v; gate and up), in one parallel
// loop, with x quantized to 8-bit blocks once for all the quantized weights among them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu-kernels.h"
#include "common/threadpool.h"

namespace herd {

class FastMatmul {
 public:
  FastMatmul(ThreadPool& pool, CpuKernels kernels) : pool_(pool), k_(kernels) {}

  CpuLevel level() const { return k_.level; }
  // x: [n, k] f32; each part's w: [m_i, k] of any stored type, out: [n, m_i] f32.
  void run(const Tensor& x, std::span<const MatmulOut> parts);

 private:
  ThreadPool& pool_;
  const CpuKernels k_;
  std::vector<Q8Block> q8_;  // x quantized, [n, k / 32], when a weight is quantized
};

}  // namespace herd
