// Which instruction-set level this machine runs, and the kernel table of a level.
#include <cstdlib>
#include <string_view>

#include "backend/cpu/amx-gemm.h"
#include "backend/cpu/cpu-kernels.h"
#include "common/check.h"

namespace herd {

namespace {

CpuLevel machine_level() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
    return CpuLevel::avx512;
  if (avx2) return CpuLevel::avx2;  // every AVX2 processor has F16C
#endif
  return CpuLevel::scalar;
}

}  // namespace

bool cpu_has_avx512_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  return machine_level() == CpuLevel::avx512 && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

const char* cpu_level_name(CpuLevel level) {
  switch (level) {
    case CpuLevel::scalar: return "scalar";
    case CpuLevel::avx2: return "avx2";
    case CpuLevel::avx512: return "avx512";
  }
  return "?";
}

CpuLevel detect_cpu_level() {
  const CpuLevel best = machine_level();
  const char* env = std::getenv("HERD_CPU_LEVEL");
  if (env == nullptr || *env == '\0') return best;
  for (CpuLevel l : {CpuLevel::scalar, CpuLevel::avx2, CpuLevel::avx512})
    if (std::string_view(env) == cpu_level_name(l)) return l < best ? l : best;
  fail_input("HERD_CPU_LEVEL=", env, ": expected scalar, avx2 or avx512");
}

CpuKernels resolve_cpu_kernels(CpuLevel level) {
  CpuKernels k;
  k.level = level;
  // Each kernel from the highest level at or below `level` that has one; scalar has them all.
  auto pick = [&](auto&& at) {
    for (int l = int(level); l >= 0; --l)
      if (auto f = at(CpuLevel(l))) return f;
    return decltype(at(CpuLevel::scalar)){};
  };
  k.quantize = pick([](CpuLevel l) { return quantize_q8_kernel(l); });
  for (DType t : {DType::f16, DType::f8_e4m3}) k.axpy[int(t)] = pick([t](CpuLevel l) { return axpy_kernel(t, l); });
  k.amx = level == CpuLevel::avx512 && amx_requested() && cpu_has_amx();
  for (DType t : {DType::q8_0, DType::q4_0, DType::q4_1}) {
    k.dot_q8[int(t)] = pick([t](CpuLevel l) { return dot_q8_legacy_kernel(t, l); });
    k.dot_q8x4[int(t)] = pick([t](CpuLevel l) { return dot_q8x4_legacy_kernel(t, l); });
  }
  for (DType t : {DType::q4_k, DType::q5_k, DType::q6_k}) {
    k.dot_q8[int(t)] = pick([t](CpuLevel l) { return dot_q8_kquant_kernel(t, l); });
    k.dot_q8x4[int(t)] = pick([t](CpuLevel l) { return dot_q8x4_kquant_kernel(t, l); });
  }
  for (DType t : {DType::fp8, DType::int4}) {
    k.dot_q8[int(t)] = pick([t](CpuLevel l) { return dot_q8_checkpoint_kernel(t, l); });
    k.dot_q8x4[int(t)] = pick([t](CpuLevel l) { return dot_q8x4_checkpoint_kernel(t, l); });
  }
  for (DType t : {DType::q8_0, DType::q4_0, DType::q4_1, DType::q4_k, DType::q5_k, DType::q6_k, DType::fp8, DType::int4})
    k.panel[int(t)] = panel_kernel(t, level);
  for (DType t : {DType::f32, DType::f16, DType::bf16}) {
    k.dot_f32[int(t)] = pick([t](CpuLevel l) { return dot_f32_kernel(t, l); });
    k.dot_f32_tile[int(t)] = dot_f32_tile_kernel(t, level);  // one summation order per backend
  }
  k.dot_f32[int(DType::f8_e4m3)] = pick([](CpuLevel l) { return dot_f32_kernel(DType::f8_e4m3, l); });
  return k;
}

}  // namespace herd
