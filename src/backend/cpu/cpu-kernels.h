// The CPU backend's fast kernels: dot products of one weight row with one token's activations,
// for every weight type, at three instruction-set levels picked once at start-up.
//
// Quantized weights (GGUF Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K; FP8 and INT4) are never converted to f32: the
// activations are quantized to 8 bits in blocks of 32 (Q8Block) and each weight block meets its
// activation block in integer arithmetic, as llama.cpp does. That rounding is the one numerical
// difference from the exact path (weights dequantized to f32, f32 products), which stays
// available as the backend's exact mode; docs/cpu.md states its size and the tolerances the tests
// use. Plain weights (f32, f16, bf16) keep f32 activations and f32 accumulation.
//
// Each level's kernels are compiled with that level's target attributes in the same files, so
// one binary runs everywhere; the scalar level is the portable reference the others are tested
// against. HERD_CPU_LEVEL=scalar|avx2|avx512 lowers the level (never raises it past the machine's).
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace herd {

// scalar: portable C++. avx2: AVX2 + FMA + F16C. avx512: AVX-512 F/BW/VL/VNNI (+BF16 when present).
enum class CpuLevel : uint8_t { scalar, avx2, avx512 };

// The best level this machine supports, lowered by HERD_CPU_LEVEL; an unknown value is invalid input.
CpuLevel detect_cpu_level();
const char* cpu_level_name(CpuLevel level);
bool cpu_has_avx512_bf16();

// 32 activations quantized to 8 bits: x[i] ~= d * q[i], with d = max|x| / 127. sum[h] is the sum
// of q over elements [16h, 16h + 16): the weights' offsets (Q4_0's -8, the K-quants' mins and
// Q6_K's -32) are applied through it instead of per element.
struct Q8Block {
  float d;
  int16_t sum[2];
  int8_t q[32];
};
static_assert(sizeof(Q8Block) == 40);

// out[0, n / 32) = x[0, n) quantized; n is a multiple of 32.
using QuantizeQ8Fn = void (*)(const float* x, int64_t n, Q8Block* out);
// The dot product of n elements of a weight row w (whole blocks of its type) with activations.
using DotQ8Fn = float (*)(int64_t n, const void* w, const Q8Block* a);
using DotF32Fn = float (*)(int64_t n, const void* w, const float* x);
// y[0, n) += a * x[0, n), x a KV cache row (f16 or FP8 E4M3): attention's weighted sum of V rows.
using AxpyFn = void (*)(int64_t n, float a, const void* x, float* y);
// Four rows at once against the same activations: out[r] = the dot product of the row at
// w + r * row_bytes with a, r in [0, 4). Sharing the activations' loads and scales across rows is
// what makes decode bound by reading the weights rather than by the kernel's own work.
using DotQ8x4Fn = void (*)(int64_t n, const void* w, size_t row_bytes, const Q8Block* a, float* out);

// Up to kPanelRows plain rows (rows of them, at w + r * row_bytes) times n_tok tokens
// (x + t * x_stride): out[t * out_stride + r] = their dot product. A token's result does not depend
// on n_tok or rows.
using DotF32TileFn = void (*)(int64_t n, const void* w, size_t row_bytes, int rows, const float* x, int64_t x_stride,
                              int64_t n_tok, float* out, int64_t out_stride);

// Each returns the kernel of (type, level), or nullptr when that level has none for the type;
// resolve_cpu_kernels then takes the next level down.
QuantizeQ8Fn quantize_q8_kernel(CpuLevel level);          // quantize-act.cpp
DotQ8Fn dot_q8_legacy_kernel(DType t, CpuLevel level);     // q8_0, q4_0, q4_1: dot-legacy.cpp
DotQ8Fn dot_q8_kquant_kernel(DType t, CpuLevel level);     // q4_k, q5_k, q6_k: dot-kquant.cpp
DotQ8Fn dot_q8_checkpoint_kernel(DType t, CpuLevel level); // fp8, int4: dot-checkpoint.cpp
// The four-row kernels, where a level has them (none at the scalar level: four single rows).
DotQ8x4Fn dot_q8x4_legacy_kernel(DType t, CpuLevel level);
DotQ8x4Fn dot_q8x4_kquant_kernel(DType t, CpuLevel level);
DotQ8x4Fn dot_q8x4_checkpoint_kernel(DType t, CpuLevel level);
DotF32Fn dot_f32_kernel(DType t, CpuLevel level);          // f32, f16, bf16, f8_e4m3: dot-float.cpp
AxpyFn axpy_kernel(DType t, CpuLevel level);               // f16, f8_e4m3: dot-float.cpp
DotF32TileFn dot_f32_tile_kernel(DType t, CpuLevel level);  // dot-float.cpp; avx512 only

// Quantized weights repacked into panels of kPanelRows rows whose blocks are interleaved, for
// kernels that multiply a panel with several tokens at once (packed-gemm.cpp has the layout).
// Prefill and batched decode reuse each unpacked weight block for every token of a tile.
constexpr int kPanelRows = 16;
struct PanelKernel {
  // Bytes of one panel of a weight with k columns (a multiple of 64).
  size_t (*panel_bytes)(int64_t k) = nullptr;
  // Packs `rows` (1 to kPanelRows) rows at w, row_bytes apart, into one panel at `panel`
  // (64-byte aligned); the rows past them are zero.
  void (*pack)(const void* w, size_t row_bytes, int rows, int64_t k, uint8_t* panel) = nullptr;
  // out[t * out_stride + r] = row r of the panel times token t's activations a[t * k / 32, ...),
  // for t in [0, n_tok) and r in [0, rows). A token's result does not depend on n_tok.
  void (*gemm)(int64_t k, const uint8_t* panel, const Q8Block* a, int64_t n_tok, float* out, int64_t out_stride,
               int rows) = nullptr;
};
// Empty where the level has no panel kernels for t: such weights stay in their own layout.
PanelKernel panel_kernel(DType t, CpuLevel level);                 // packed-gemm.cpp

// An E4M3 code seeeemmm as the f16 s0eeeemmm0000000 is exactly the E4M3 value times 2^-8
// (subnormals included: both formats' subnormals have the same exponent offset), so F16C widens FP8
// data exactly, and kFp8F16Unit = 2^8 restores its value.
constexpr float kFp8F16Unit = 256.f;

// The kernels one backend uses, resolved once.
struct CpuKernels {
  CpuLevel level = CpuLevel::scalar;
  QuantizeQ8Fn quantize = nullptr;
  DotQ8Fn dot_q8[16] = {};   // by DType, for the quantized types
  DotQ8x4Fn dot_q8x4[16] = {};  // by DType; null: four calls of dot_q8
  PanelKernel panel[16] = {}; // by DType, only at the level asked for (a packed layout is per level)
  DotF32Fn dot_f32[16] = {}; // by DType, for f32, f16, bf16 and f8_e4m3 (KV cache rows)
  DotF32TileFn dot_f32_tile[16] = {};  // by DType; null: dot_f32 per row and token
  AxpyFn axpy[16] = {};      // by DType, for f16 and f8_e4m3
  bool amx = false;  // F16 and BF16 weights on AMX tiles (amx-gemm.h): avx512, HERD_CPU_AMX=on, where present
};
CpuKernels resolve_cpu_kernels(CpuLevel level);

}  // namespace herd
