// Products of F16 and BF16 weights on Intel AMX tiles, where the processor and the OS provide
// them (amx-gemm.cpp explains the BF16 splitting that keeps them f32 products).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"

namespace herd {

// The processor has AMX-TILE and AMX-BF16 with AVX-512 BF16, and Linux granted this process the
// tile state.
bool cpu_has_amx();
// HERD_CPU_AMX=on: the user asked for AMX tiles (off, or unset, by default: they are not bit for
// bit the FMA kernels, so results would depend on how many tokens share a step; any value but
// on/off is invalid input).
bool amx_requested();

// Elements of the prepared activations of n_tok tokens of k columns (k a multiple of 32).
inline int64_t amx_activation_elems(int64_t k, int64_t n_tok) { return (n_tok + 15) / 16 * (k / 32) * 3 * 512; }

// Writes token tile `tile` (tokens [16 tile, 16 tile + 16) of x [n_tok, k] f32; rows past n_tok are
// zeros) into out, which holds amx_activation_elems(k, n_tok) BF16 values for all tiles.
void amx_prepare_activations(const float* x, int64_t k, int64_t n_tok, int64_t tile, uint16_t* out);

// Weight rows one call takes: 16 panels of 16, four at a time on the four accumulator tiles.
constexpr int kAmxRows = 256;

// out[t * out_stride + r] = row r of the `rows` (1 to kAmxRows) weight rows at w (row_bytes apart,
// type f16 or bf16, k a multiple of 32) times token t of the prepared activations, for t < n_tok.
void amx_gemm_rows(DType t, int64_t k, const void* w, size_t row_bytes, int rows, const uint16_t* x, int64_t n_tok,
                   float* out, int64_t out_stride);

}  // namespace herd
