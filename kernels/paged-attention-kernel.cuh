// The f32 paged-attention kernel itself (launched by kernels/paged-attention.cu); a header of its
// own so that tests/kernels also runs it on an emulated device in CI (see flash-attention-kernel.cuh).
#pragma once

#include <cstring>

#include "kernels/attention-tiles.cuh"
#include "kernels/common.cuh"

namespace herd::kernels {
namespace paged {


// A block takes 16 query rows of one sequence and one KV head (a row = one token x one query head
// of the group, so the heads of a group read each K/V tile once) and a range of that sequence's
// keys, in tiles of 32 keys. Each warp owns 2 rows: in the score step lane j scores key j, in the
// output step lane l owns dimensions l, l + 32, ... — no cross-lane reduction over head_dim.
// While a tile is being used, the next one is already on its way into registers (one tile of
// prefetch hides most of the global-memory latency of an otherwise un-pipelined loop).
constexpr int kTileKeys = 32;
constexpr int kWarps = 8;
constexpr int kRowsPerWarp = 2;
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;
constexpr int kThreads = kWarps * 32;

using bf16 = __nv_bfloat16;
using fp8 = __nv_fp8_e4m3;

// A cache's 16-byte load as f32: 8 bf16 values (exact: a bf16 is the high half of its f32, low
// element first in memory) or 16 E4M3 codes (exact too), times `mul` (an FP8 cache's v scale; 1 else).
template <typename TC>
__device__ __forceinline__ void unpack16(const uint4& raw, float mul, float* dst);
template <>
__device__ __forceinline__ void unpack16<bf16>(const uint4& raw, float mul, float* dst) {
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t lo = w[i] << 16, hi = w[i] & 0xffff0000u;
    float f[2];
    memcpy(&f[0], &lo, 4);  // register moves on the device
    memcpy(&f[1], &hi, 4);
    dst[2 * i] = f[0] * mul;
    dst[2 * i + 1] = f[1] * mul;
  }
}
template <>
__device__ __forceinline__ void unpack16<fp8>(const uint4& raw, float mul, float* dst) {
  fp8 e[16];
  memcpy(e, &raw, 16);
#pragma unroll
  for (int i = 0; i < 16; ++i) dst[i] = float(e[i]) * mul;
}

// The block's shared memory (dynamic: the launch passes sizeof), 41 KB at head_dim 128. K rows are
// padded by 4 floats: lane j reads k[j][d..d+3] as one float4, and the 8 lanes of each quarter-warp
// then hit 8 different groups of 4 banks. Rows stay 16-byte aligned.
template <int HEAD_DIM>
struct Smem {
  alignas(16) float k[kTileKeys][HEAD_DIM + 4];
  alignas(16) float v[kTileKeys][HEAD_DIM];
  alignas(16) float q[kRowsPerBlock][HEAD_DIM];
};

// At least 3 blocks per multiprocessor (<= 85 registers; shared memory allows 5 at head_dim 128): more
// tiles in flight matter more to this memory-bound loop than registers for deeper unrolling.
template <int HEAD_DIM, typename TC>
__global__ void __launch_bounds__(kThreads, 3) paged_attention_kernel(
    const float* __restrict__ q,              // [n_tokens, n_head, HEAD_DIM], token stride q_stride
    const TC* __restrict__ k_cache,           // [n_blocks, n_head_kv, block_size, HEAD_DIM]
    const TC* __restrict__ v_cache,           // [n_blocks, n_head_kv, block_size, HEAD_DIM]
    const int32_t* __restrict__ qsl,          // [n_seqs + 1]
    const int32_t* __restrict__ seq_lens,     // [n_seqs]
    const int32_t* __restrict__ block_table,  // [n_seqs, max_blocks]
    float* __restrict__ out,                  // [n_tokens, n_head * HEAD_DIM], token stride out_stride
    float* __restrict__ part_o,               // [n_splits, n_tokens, n_head, HEAD_DIM] unnormalised
    float* __restrict__ part_ml,              // [n_splits, n_tokens, n_head, 2] running max, sum
    int n_tokens, int n_seqs, int n_head, int n_head_kv, int block_shift, int n_blocks, int max_blocks,
    int64_t q_stride, int64_t out_stride, float scale, float v_scale) {
  constexpr int kVec = 16 / int(sizeof(TC));  // cache elements per 16-byte load
  constexpr int kDimsPerLane = HEAD_DIM / 32;
  constexpr int kChunksPerRow = HEAD_DIM / kVec;
  constexpr int kChunksPerTile = kTileKeys * kChunksPerRow;
  constexpr int kChunksPerThread = (kChunksPerTile + kThreads - 1) / kThreads;
  Smem<HEAD_DIM>& sm = *reinterpret_cast<Smem<HEAD_DIM>*>(dynamic_smem());
  auto& k_s = sm.k;
  auto& v_s = sm.v;
  auto& q_s = sm.q;

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int kv_head = blockIdx.y, split = blockIdx.z, n_splits = gridDim.z;
  const int group = n_head / n_head_kv;

  // --- which sequence, which of its rows, which keys ---
  const AttentionTile tl = attention_find_tile<kRowsPerBlock>(qsl, int(blockIdx.x), n_tokens, n_seqs, group);
  const int s = tl.s, local_tile = tl.local, q_begin = tl.q_begin, q_end = tl.q_end;
  const int n_rows = (q_end - q_begin) * group;  // query rows of this sequence that read this KV head
  const int row0 = local_tile * kRowsPerBlock;
  if (local_tile < 0 || row0 >= n_rows) return;  // a slack tile (uniform over the block: no barrier skipped)
  const int seq_len = __ldg(seq_lens + s);
  const int first_pos = seq_len - (q_end - q_begin);  // position of the sequence's first query
  // Keys past the block table's reach do not exist (a bad seq_len must not read past the table).
  const int n_keys = int(min(int64_t(seq_len), int64_t(max_blocks) << block_shift));
  const int32_t* __restrict__ bt = block_table + int64_t(s) * max_blocks;
  auto last_key = [&](int row) {  // the last key a row sees; -1: none
    return row < n_rows ? max(-1, min(first_pos + row / group, n_keys - 1)) : -1;
  };
  // Rows are in token order, so the tile's last row sees the most keys.
  const int kv_end = last_key(min(row0 + kRowsPerBlock, n_rows) - 1) + 1;
  int key_begin = 0, key_end = kv_end;
  if (n_splits > 1) {
    const int chunk = ((kv_end + n_splits - 1) / n_splits + kTileKeys - 1) / kTileKeys * kTileKeys;
    key_begin = split * chunk;
    key_end = min(kv_end, key_begin + chunk);
  }

  // Query rows into shared memory (every lane reads all of a row in the score step).
  for (int idx = threadIdx.x; idx < kRowsPerBlock * HEAD_DIM; idx += kThreads) {
    const int r = idx / HEAD_DIM, d = idx % HEAD_DIM, row = row0 + r;
    float v = 0.f;
    if (row < n_rows) {
      const int t = q_begin + row / group, h = kv_head * group + row % group;
      v = q[int64_t(t) * q_stride + int64_t(h) * HEAD_DIM + d];
    }
    q_s[r][d] = v;
  }

  // --- K/V tiles: global -> registers (prefetch) -> f32 in shared memory ---
  uint4 k_raw[kChunksPerThread], v_raw[kChunksPerThread];
  auto fetch = [&](int tile) {
#pragma unroll
    for (int c = 0; c < kChunksPerThread; ++c) {
      const int idx = threadIdx.x + c * kThreads, j = idx / kChunksPerRow, key = tile + j;
      k_raw[c] = v_raw[c] = make_uint4(0, 0, 0, 0);  // zeros: keys past key_end never add NaNs
      if (idx < kChunksPerTile && key < key_end) {
        const int phys = __ldg(bt + (key >> block_shift));
        if (phys >= 0 && phys < n_blocks) {
          const int offset = key & ((1 << block_shift) - 1);
          const int64_t slot = ((int64_t(phys) * n_head_kv + kv_head) << block_shift) + offset;
          const int64_t off = slot * HEAD_DIM + (idx % kChunksPerRow) * kVec;
          k_raw[c] = __ldg(reinterpret_cast<const uint4*>(k_cache + off));
          v_raw[c] = __ldg(reinterpret_cast<const uint4*>(v_cache + off));
        }
      }
    }
  };
  // The key scale is in `scale`; the value scale applies here, once per element.
  auto stash = [&]() {
#pragma unroll
    for (int c = 0; c < kChunksPerThread; ++c) {
      const int idx = threadIdx.x + c * kThreads, j = idx / kChunksPerRow, d0 = (idx % kChunksPerRow) * kVec;
      if (idx >= kChunksPerTile) continue;
      float kf[kVec], vf[kVec];
      unpack16<TC>(k_raw[c], 1.f, kf);
      unpack16<TC>(v_raw[c], v_scale, vf);
#pragma unroll
      for (int i = 0; i < kVec; i += 4) {
        *reinterpret_cast<float4*>(&k_s[j][d0 + i]) = make_float4(kf[i], kf[i + 1], kf[i + 2], kf[i + 3]);
        *reinterpret_cast<float4*>(&v_s[j][d0 + i]) = make_float4(vf[i], vf[i + 1], vf[i + 2], vf[i + 3]);
      }
    }
  };

  int last[kRowsPerWarp];
  float m[kRowsPerWarp], l[kRowsPerWarp], o[kRowsPerWarp][kDimsPerLane];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    last[rr] = last_key(row0 + warp * kRowsPerWarp + rr);
    m[rr] = -INFINITY;
    l[rr] = 0.f;
#pragma unroll
    for (int e = 0; e < kDimsPerLane; ++e) o[rr][e] = 0.f;
  }

  if (key_begin < key_end) fetch(key_begin);
  for (int tile = key_begin; tile < key_end; tile += kTileKeys) {
    stash();
    __syncthreads();  // the tile (and, the first time, q_s) is visible to every warp
    if (tile + kTileKeys < key_end) fetch(tile + kTileKeys);

    int n_valid[kRowsPerWarp];  // keys of this tile row rr sees: a prefix, by causality
    bool any = false;
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      n_valid[rr] = max(0, min(kTileKeys, min(last[rr] + 1, key_end) - tile));
      any |= n_valid[rr] > 0;
    }
    if (any) {  // warp-uniform
      // Scores: lane j dots both rows with key j.
      float sc[kRowsPerWarp] = {};
      const float* krow = k_s[lane];
#pragma unroll 2
      for (int d = 0; d < HEAD_DIM; d += 4) {
        const float4 kv = *reinterpret_cast<const float4*>(krow + d);
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) {
          const float4 qv = *reinterpret_cast<const float4*>(&q_s[warp * kRowsPerWarp + rr][d]);
          sc[rr] += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z + qv.w * kv.w;
        }
      }
      float p[kRowsPerWarp];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        p[rr] = 0.f;
        if (n_valid[rr] == 0) continue;
        const float x = lane < n_valid[rr] ? sc[rr] * scale : -INFINITY;
        const float m_new = fmaxf(m[rr], warp_max(x));
        const float alpha = expf(m[rr] - m_new);  // 0 on the first tile (m = -inf)
        p[rr] = lane < n_valid[rr] ? expf(x - m_new) : 0.f;
        l[rr] = l[rr] * alpha + warp_sum(p[rr]);
        m[rr] = m_new;
#pragma unroll
        for (int e = 0; e < kDimsPerLane; ++e) o[rr][e] *= alpha;
      }
      // Output: lane l accumulates its dimensions over the tile's keys, p broadcast by shuffle.
      int n_used = 0;
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) n_used = max(n_used, n_valid[rr]);
      for (int j = 0; j < n_used; ++j) {
        float vv[kDimsPerLane];
#pragma unroll
        for (int e = 0; e < kDimsPerLane; ++e) vv[e] = v_s[j][lane + 32 * e];
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) {
          const float pj = __shfl_sync(0xffffffffu, p[rr], j);
          if (j < n_valid[rr]) {
#pragma unroll
            for (int e = 0; e < kDimsPerLane; ++e) o[rr][e] += pj * vv[e];
          }
        }
      }
    }
    __syncthreads();  // before the next stash overwrites k_s / v_s
  }

#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int row = row0 + warp * kRowsPerWarp + rr;
    if (row >= n_rows) continue;
    const int t = q_begin + row / group, h = kv_head * group + row % group;
    if (n_splits == 1) {
      const float inv_l = l[rr] > 0.f ? 1.0f / l[rr] : 0.f;  // a row with no keys gives zeros
      float* dst = out + int64_t(t) * out_stride + int64_t(h) * HEAD_DIM;
#pragma unroll
      for (int e = 0; e < kDimsPerLane; ++e) dst[lane + 32 * e] = o[rr][e] * inv_l;
    } else {
      // Every split writes its partial, even an empty one (m = -inf), so the combine reads no stale data.
      const int64_t slot = (int64_t(split) * n_tokens + t) * n_head + h;
      float* dst = part_o + slot * HEAD_DIM;
#pragma unroll
      for (int e = 0; e < kDimsPerLane; ++e) dst[lane + 32 * e] = o[rr][e];
      if (lane == 0) {
        part_ml[slot * 2] = m[rr];
        part_ml[slot * 2 + 1] = l[rr];
      }
    }
  }
}

}  // namespace paged
}  // namespace herd::kernels
