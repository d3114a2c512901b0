// The tensor-core attention kernel itself (launched by kernels/flash-attention.cu). A header of its
// own so that tests/kernels can also run it on the CPU, through an emulation of the warp-level
// primitives (HERD_EMULATED_DEVICE: mma-primitives.cuh is then the test's), where CI checks the
// fragment and mask arithmetic without a GPU.
#pragma once

#include "kernels/attention-tiles.cuh"
#include "kernels/common.cuh"
#ifndef HERD_EMULATED_DEVICE
#include "kernels/mma-primitives.cuh"
#endif

namespace herd::kernels {
namespace flash {

// Four warps, 16 query rows each, against tiles of 64 keys. Per tile each warp computes its
// 16 x 64 scores S = Q K^T with m16n8k16 MMAs (Q's fragments stay in registers for the whole key
// range), updates the online softmax in registers, and adds P V with P taken straight from S's
// accumulators (an m16n8 accumulator pair is an m16k16 A fragment). K and V tiles are gathered
// through the block table into shared memory with cp.async: V's load overlaps the score product,
// the next K's the output product.
constexpr int kWarps = 4;
constexpr int kBlockM = 16 * kWarps;  // query rows per block
constexpr int kBlockN = 64;           // keys per tile
constexpr int kThreads = 32 * kWarps;
constexpr float kLog2e = 1.4426950408889634f;

using bf16 = __nv_bfloat16;
using fp8 = __nv_fp8_e4m3;

// Shared-memory rows are padded by 16 bytes: the 8 row addresses of an ldmatrix then start in 8
// different groups of four banks, so the loads are conflict-free at every head_dim.
template <int D>
constexpr int kStride = D + 8;  // bf16 elements per shared row

template <int D>
constexpr size_t smem_bytes() {
  return size_t(kBlockM + 2 * kBlockN) * kStride<D> * sizeof(bf16);  // Q, K, V tiles
}

// Two f32 as a bf16 pair, the first in the low half (the lower column of a fragment).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t r;
  memcpy(&r, &v, sizeof(r));  // a register move on the device
  return r;
}

// Key row `key` of the block's KV head, or null past key_end or for a block id outside the pool
// (read as zeros, as paged_attention does).
template <int D, typename TC>
__device__ __forceinline__ const TC* key_row(const TC* __restrict__ cache, const int32_t* __restrict__ bt, int key,
                                             int key_end, int kv_head, int n_head_kv, int block_shift, int n_blocks) {
  if (key >= key_end) return nullptr;
  const int phys = __ldg(bt + (key >> block_shift));
  if (phys < 0 || phys >= n_blocks) return nullptr;
  const int64_t slot = ((int64_t(phys) * n_head_kv + kv_head) << block_shift) + (key & ((1 << block_shift) - 1));
  return cache + slot * D;
}

// A tile of kBlockN key rows into shared memory as bf16: cp.async for a bf16 cache; an FP8 cache
// goes through registers, its codes widened exactly (E4M3 values are bf16 values).
template <int D, typename TC>
__device__ __forceinline__ void load_tile(bf16* __restrict__ dst, const TC* __restrict__ cache,
                                          const int32_t* __restrict__ bt, int tile, int key_end, int kv_head,
                                          int n_head_kv, int block_shift, int n_blocks) {
  constexpr int kVec = 16 / int(sizeof(TC));  // cache elements per 16-byte chunk
  constexpr int kChunks = D / kVec;           // chunks per key row
  for (int idx = threadIdx.x; idx < kBlockN * kChunks; idx += kThreads) {
    const int j = idx / kChunks, c = idx % kChunks;
    const TC* row = key_row<D>(cache, bt, tile + j, key_end, kv_head, n_head_kv, block_shift, n_blocks);
    bf16* d = dst + j * kStride<D> + c * kVec;
    if constexpr (sizeof(TC) == 2) {
      cp_async16(d, row != nullptr ? row + c * kVec : cache, row != nullptr ? 16 : 0);
    } else {
      uint4 raw = make_uint4(0, 0, 0, 0);
      if (row != nullptr) raw = __ldg(reinterpret_cast<const uint4*>(row + c * kVec));
      const fp8* e = reinterpret_cast<const fp8*>(&raw);
      uint32_t w[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) w[i] = pack_bf16(float(e[2 * i]), float(e[2 * i + 1]));
      reinterpret_cast<uint4*>(d)[0] = make_uint4(w[0], w[1], w[2], w[3]);
      reinterpret_cast<uint4*>(d)[1] = make_uint4(w[4], w[5], w[6], w[7]);
    }
  }
}

template <int D, typename TC>
__global__ void __launch_bounds__(kThreads) flash_attention_kernel(
    const float* __restrict__ q,              // [n_tokens, n_head, D], token stride q_stride
    const TC* __restrict__ k_cache,           // [n_blocks, n_head_kv, block_size, D]
    const TC* __restrict__ v_cache,           // [n_blocks, n_head_kv, block_size, D]
    const int32_t* __restrict__ qsl,          // [n_seqs + 1]
    const int32_t* __restrict__ seq_lens,     // [n_seqs]
    const int32_t* __restrict__ block_table,  // [n_seqs, max_blocks]
    float* __restrict__ out,                  // [n_tokens, n_head * D], token stride out_stride
    float* __restrict__ part_o,               // [n_splits, n_tokens, n_head, D] unnormalised
    float* __restrict__ part_ml,              // [n_splits, n_tokens, n_head, 2] running max, sum
    int n_tokens, int n_seqs, int n_head, int n_head_kv, int block_shift, int n_blocks, int max_blocks,
    int64_t q_stride, int64_t out_stride, float scale_log2, float v_scale) {
  constexpr int S = kStride<D>;
  constexpr int kDimTiles = D / 8;    // n8 tiles of the output
  constexpr int kDimChunks = D / 16;  // k16 chunks of the score product
  constexpr int kKeyTiles = kBlockN / 8;
  bf16* q_s = reinterpret_cast<bf16*>(dynamic_smem());  // [kBlockM][S]
  bf16* k_s = q_s + kBlockM * S;              // [kBlockN][S]
  bf16* v_s = k_s + kBlockN * S;              // [kBlockN][S]

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int kv_head = blockIdx.y, split = blockIdx.z, n_splits = gridDim.z;
  const int group = n_head / n_head_kv;

  // --- which sequence, rows and keys. Tiles late in a sequence see the most keys: the grid runs
  // them first, so the short ones fill in at the end instead of leaving a long tail.
  const int tile_index = int(gridDim.x) - 1 - int(blockIdx.x);
  const AttentionTile tl = attention_find_tile<kBlockM>(qsl, tile_index, n_tokens, n_seqs, group);
  const int n_rows = (tl.q_end - tl.q_begin) * group;
  const int row0 = tl.local * kBlockM;
  if (tl.local < 0 || row0 >= n_rows) return;  // a slack tile (uniform over the block)
  const int seq_len = __ldg(seq_lens + tl.s);
  const int first_pos = seq_len - (tl.q_end - tl.q_begin);
  const int n_keys = int(min(int64_t(seq_len), int64_t(max_blocks) << block_shift));
  const int32_t* __restrict__ bt = block_table + int64_t(tl.s) * max_blocks;
  auto last_key = [&](int row) {  // the last key a row sees; -1: none
    return row < n_rows ? max(-1, min(first_pos + row / group, n_keys - 1)) : -1;
  };
  // Rows are in token order: the block's first row sees the fewest keys, its last the most.
  const int kv_end = last_key(min(row0 + kBlockM, n_rows) - 1) + 1;
  const int kv_all = last_key(row0) + 1;  // keys [0, kv_all) are visible to every row
  int key_begin = 0, key_end = kv_end;
  if (n_splits > 1) {
    const int chunk = ((kv_end + n_splits - 1) / n_splits + kBlockN - 1) / kBlockN * kBlockN;
    key_begin = split * chunk;
    key_end = min(kv_end, key_begin + chunk);
  }

  // --- Q rows -> shared memory as bf16 (zeros past the sequence's rows) -> this warp's fragments ---
  for (int idx = threadIdx.x; idx < kBlockM * (D / 4); idx += kThreads) {
    const int r = idx / (D / 4), d = (idx % (D / 4)) * 4, row = row0 + r;
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (row < n_rows) {
      const int t = tl.q_begin + row / group, h = kv_head * group + row % group;
      v = *reinterpret_cast<const float4*>(q + int64_t(t) * q_stride + int64_t(h) * D + d);
    }
    *reinterpret_cast<uint2*>(q_s + r * S + d) = make_uint2(pack_bf16(v.x, v.y), pack_bf16(v.z, v.w));
  }
  if (key_begin < key_end)
    load_tile<D>(k_s, k_cache, bt, key_begin, key_end, kv_head, n_head_kv, block_shift, n_blocks);
  cp_async_commit();
  __syncthreads();
  uint32_t qf[kDimChunks][4];
#pragma unroll
  for (int kc = 0; kc < kDimChunks; ++kc)
    ldmatrix_x4(qf[kc], q_s + (warp * 16 + (lane & 15)) * S + kc * 16 + (lane >> 4) * 8);

  // This thread's rows of the warp's 16: g and g + 8 (fragment layout), and their columns 2t, 2t + 1
  // of every n8 tile.
  const int g = lane >> 2, t4 = lane & 3;
  const int rows[2] = {row0 + warp * 16 + g, row0 + warp * 16 + g + 8};
  const int last[2] = {last_key(rows[0]), last_key(rows[1])};
  float o[kDimTiles][4];
#pragma unroll
  for (int i = 0; i < kDimTiles; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // log2 units; l: this thread's columns only

  for (int tile = key_begin; tile < key_end; tile += kBlockN) {
    load_tile<D>(v_s, v_cache, bt, tile, key_end, kv_head, n_head_kv, block_shift, n_blocks);
    cp_async_commit();
    cp_async_wait<1>();  // this tile's K
    __syncthreads();

    // S = Q K^T for 16 rows x 64 keys: per k16 chunk, an x4 ldmatrix gives two n8 tiles' B fragments.
    float sc[kKeyTiles][4];
#pragma unroll
    for (int i = 0; i < kKeyTiles; ++i) sc[i][0] = sc[i][1] = sc[i][2] = sc[i][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < kDimChunks; ++kc) {
#pragma unroll
      for (int np = 0; np < kKeyTiles / 2; ++np) {
        uint32_t b[4];
        ldmatrix_x4(b, k_s + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * S + kc * 16 + ((lane >> 3) & 1) * 8);
        mma_bf16(sc[2 * np], qf[kc], b[0], b[1]);
        mma_bf16(sc[2 * np + 1], qf[kc], b[2], b[3]);
      }
    }

    // Scale into log2 units; mask keys past a row's causal limit or the split's end (only tiles
    // that reach past kv_all need it).
    const bool needs_mask = tile + kBlockN > kv_all || tile + kBlockN > key_end;
#pragma unroll
    for (int i = 0; i < kKeyTiles; ++i) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = sc[i][e] * scale_log2;
        if (needs_mask) {
          const int key = tile + i * 8 + 2 * t4 + (e & 1);
          if (key > last[e >> 1] || key >= key_end) x = -INFINITY;
        }
        sc[i][e] = x;
      }
    }
    // Online softmax per row: the 4 threads of a row (lanes 4g .. 4g + 3) share its maximum.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = -INFINITY;
#pragma unroll
      for (int i = 0; i < kKeyTiles; ++i) mx = fmaxf(mx, fmaxf(sc[i][2 * h], sc[i][2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[h], mx);
      const float base = m_new == -INFINITY ? 0.f : m_new;  // a row with no key yet: all p are 0
      const float alpha = exp2f(m[h] - base);                // 0 the first time (m = -inf)
      float sum = 0.f;
#pragma unroll
      for (int i = 0; i < kKeyTiles; ++i) {
        sc[i][2 * h] = exp2f(sc[i][2 * h] - base);
        sc[i][2 * h + 1] = exp2f(sc[i][2 * h + 1] - base);
        sum += sc[i][2 * h] + sc[i][2 * h + 1];
      }
      l[h] = l[h] * alpha + sum;
      m[h] = m_new;
#pragma unroll
      for (int i = 0; i < kDimTiles; ++i) {
        o[i][2 * h] *= alpha;
        o[i][2 * h + 1] *= alpha;
      }
    }

    __syncthreads();  // every warp is done with k_s
    if (tile + kBlockN < key_end)
      load_tile<D>(k_s, k_cache, bt, tile + kBlockN, key_end, kv_head, n_head_kv, block_shift, n_blocks);
    cp_async_commit();
    cp_async_wait<1>();  // this tile's V
    __syncthreads();

    // O += P V: P's k16 chunk c is score tiles 2c and 2c + 1; V's B fragments come transposed.
#pragma unroll
    for (int kc = 0; kc < kBlockN / 16; ++kc) {
      const uint32_t a[4] = {pack_bf16(sc[2 * kc][0], sc[2 * kc][1]), pack_bf16(sc[2 * kc][2], sc[2 * kc][3]),
                             pack_bf16(sc[2 * kc + 1][0], sc[2 * kc + 1][1]),
                             pack_bf16(sc[2 * kc + 1][2], sc[2 * kc + 1][3])};
#pragma unroll
      for (int dp = 0; dp < kDimTiles / 2; ++dp) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, v_s + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * S + dp * 16 + (lane >> 4) * 8);
        mma_bf16(o[2 * dp], a, b[0], b[1]);
        mma_bf16(o[2 * dp + 1], a, b[2], b[3]);
      }
    }
    __syncthreads();  // every warp is done with v_s before the next tile's V lands there
  }
  cp_async_wait<0>();

  // --- out (or this split's partial): the row's 4 threads add up their parts of l ---
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
    const int row = rows[h];
    if (row >= n_rows) continue;
    const int t = tl.q_begin + row / group, head = kv_head * group + row % group;
    float* dst;
    float mul;
    if (n_splits == 1) {
      dst = out + int64_t(t) * out_stride + int64_t(head) * D;
      mul = l[h] > 0.f ? v_scale / l[h] : 0.f;  // a row with no keys gives zeros
    } else {
      // Every split writes its partial, even an empty one (m = -inf), so the combine reads no stale data.
      const int64_t slot = (int64_t(split) * n_tokens + t) * n_head + head;
      dst = part_o + slot * D;
      mul = v_scale;
      if (t4 == 0) {
        part_ml[slot * 2] = m[h] == -INFINITY ? -INFINITY : m[h] / kLog2e;  // natural-log units
        part_ml[slot * 2 + 1] = l[h];
      }
    }
#pragma unroll
    for (int i = 0; i < kDimTiles; ++i)
      *reinterpret_cast<float2*>(dst + i * 8 + 2 * t4) = make_float2(o[i][2 * h] * mul, o[i][2 * h + 1] * mul);
  }
}

}  // namespace flash
}  // namespace herd::kernels
