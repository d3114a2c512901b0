#include "kernels/attention.cuh"

#include <algorithm>
#include <cmath>

namespace herd::kernels {
namespace {

// A block takes 16 query rows of one KV head (a row = one token x one query head of the group, so
// the heads of a group read each K/V tile once) and a range of keys, in tiles of 32 keys. Each
// warp owns 2 rows: in the score step lane j scores key j, in the output step lane l owns
// dimensions l, l + 32, ... — no cross-lane reduction over head_dim is ever needed.
constexpr int kTileKeys = 32;
constexpr int kWarps = 8;
constexpr int kRowsPerWarp = 2;
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;
constexpr int kThreads = kWarps * 32;
constexpr int kMaxSplits = 128;

template <int HEAD_DIM, typename TC>
__global__ void __launch_bounds__(kThreads) attention_kernel(
    const float* __restrict__ q,        // [n_tokens, n_head, HEAD_DIM], token stride q_stride
    const TC* __restrict__ k_cache,     // [n_ctx, n_head_kv, HEAD_DIM]
    const TC* __restrict__ v_cache,     // [n_ctx, n_head_kv, HEAD_DIM]
    const int32_t* __restrict__ pos,    // [n_tokens]
    float* __restrict__ out,            // [n_tokens, n_head * HEAD_DIM], token stride out_stride
    float* __restrict__ part_o,         // [n_splits, n_tokens, n_head, HEAD_DIM] unnormalised
    float* __restrict__ part_ml,        // [n_splits, n_tokens, n_head, 2] running max, sum
    int n_tokens, int n_head, int n_head_kv, int n_ctx, int64_t q_stride, int64_t out_stride, float scale) {
  constexpr int kDimsPerLane = HEAD_DIM / 32;
  constexpr int kVec = Vec16<TC>::n;
  // K rows padded by one float: lane j reads k_s[j][d], so the 32 lanes hit 32 different banks.
  __shared__ float k_s[kTileKeys][HEAD_DIM + 1];
  __shared__ __align__(16) float v_s[kTileKeys][HEAD_DIM];
  __shared__ __align__(16) float q_s[kRowsPerBlock][HEAD_DIM];
  __shared__ int kv_end_s, kv_all_s;

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int kv_head = blockIdx.y, split = blockIdx.z, n_splits = gridDim.z;
  const int group = n_head / n_head_kv;
  const int n_rows = n_tokens * group;  // query rows that read this KV head
  const int row0 = blockIdx.x * kRowsPerBlock;
  const int64_t kv_row = int64_t(n_head_kv) * HEAD_DIM;  // elements between consecutive positions

  if (threadIdx.x == 0) kv_end_s = kv_all_s = 0;
  // Query rows into shared memory (every lane reads all of a row in the score step).
  for (int idx = threadIdx.x; idx < kRowsPerBlock * HEAD_DIM; idx += kThreads) {
    const int r = idx / HEAD_DIM, d = idx % HEAD_DIM, row = row0 + r;
    float v = 0.f;
    if (row < n_rows) {
      const int t = row / group, h = kv_head * group + row % group;
      v = q[int64_t(t) * q_stride + int64_t(h) * HEAD_DIM + d];
    }
    q_s[r][d] = v;
  }
  __syncthreads();

  // Each row's last visible key (-1: none); the block needs keys up to the largest.
  int last[kRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int row = row0 + warp * kRowsPerWarp + rr;
    last[rr] = row < n_rows ? min(pos[row / group], n_ctx - 1) : -1;
    if (lane == 0 && last[rr] >= 0) atomicMax(&kv_end_s, last[rr] + 1);
  }
  if (n_splits > 1) {
    // Splits divide the keys of the whole batch evenly; only the device knows the positions.
    for (int t = threadIdx.x; t < n_tokens; t += kThreads) atomicMax(&kv_all_s, min(pos[t], n_ctx - 1) + 1);
  }
  __syncthreads();
  int key_begin = 0, key_end = kv_end_s;
  if (n_splits > 1) {
    const int chunk = ((kv_all_s + n_splits - 1) / n_splits + kTileKeys - 1) / kTileKeys * kTileKeys;
    key_begin = split * chunk;
    key_end = min(key_end, key_begin + chunk);
  }

  float m[kRowsPerWarp], l[kRowsPerWarp], o[kRowsPerWarp][kDimsPerLane];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0.f;
#pragma unroll
    for (int e = 0; e < kDimsPerLane; ++e) o[rr][e] = 0.f;
  }

  for (int tile = key_begin; tile < key_end; tile += kTileKeys) {
    // K and V tile -> f32 in shared memory, 16-byte loads; keys past key_end are zeros so that
    // nothing uninitialised ever enters an FMA.
    constexpr int kChunksPerRow = HEAD_DIM / kVec;
    for (int idx = threadIdx.x; idx < kTileKeys * kChunksPerRow; idx += kThreads) {
      const int j = idx / kChunksPerRow, d0 = (idx % kChunksPerRow) * kVec;
      float kf[kVec], vf[kVec];
      if (tile + j < key_end) {
        const int64_t off = int64_t(tile + j) * kv_row + int64_t(kv_head) * HEAD_DIM + d0;
        load16_f32(k_cache + off, kf);
        load16_f32(v_cache + off, vf);
      } else {
#pragma unroll
        for (int e = 0; e < kVec; ++e) kf[e] = vf[e] = 0.f;
      }
#pragma unroll
      for (int e = 0; e < kVec; ++e) {
        k_s[j][d0 + e] = kf[e];
        v_s[j][d0 + e] = vf[e];
      }
    }
    __syncthreads();

    int n_valid[kRowsPerWarp];  // keys of this tile row rr sees: a prefix, by causality
    bool any = false;
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      n_valid[rr] = max(0, min(kTileKeys, min(last[rr] + 1, key_end) - tile));
      any |= n_valid[rr] > 0;
    }
    if (any) {  // warp-uniform
      // Scores: lane j dots both rows with key j.
      float s[kRowsPerWarp] = {};
      const float* krow = k_s[lane];
#pragma unroll 8
      for (int d = 0; d < HEAD_DIM; d += 4) {
        const float k0 = krow[d], k1 = krow[d + 1], k2 = krow[d + 2], k3 = krow[d + 3];
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) {
          const float4 qv = *reinterpret_cast<const float4*>(&q_s[warp * kRowsPerWarp + rr][d]);
          s[rr] += qv.x * k0 + qv.y * k1 + qv.z * k2 + qv.w * k3;
        }
      }
      float p[kRowsPerWarp];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        p[rr] = 0.f;
        if (n_valid[rr] == 0) continue;
        const float sc = lane < n_valid[rr] ? s[rr] * scale : -INFINITY;
        const float m_new = fmaxf(m[rr], warp_max(sc));
        const float alpha = expf(m[rr] - m_new);  // 0 on the first tile (m = -inf)
        p[rr] = lane < n_valid[rr] ? expf(sc - m_new) : 0.f;
        l[rr] = l[rr] * alpha + warp_sum(p[rr]);
        m[rr] = m_new;
#pragma unroll
        for (int e = 0; e < kDimsPerLane; ++e) o[rr][e] *= alpha;
      }
      // Output: lane l accumulates its dimensions over the tile's keys, p broadcast by shuffle.
      int n_keys = 0;
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) n_keys = max(n_keys, n_valid[rr]);
      for (int j = 0; j < n_keys; ++j) {
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
    __syncthreads();  // before the next tile overwrites k_s / v_s
  }

#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int row = row0 + warp * kRowsPerWarp + rr;
    if (row >= n_rows) continue;
    const int t = row / group, h = kv_head * group + row % group;
    if (n_splits == 1) {
      const float inv_l = l[rr] > 0.f ? 1.0f / l[rr] : 0.f;
      float* dst = out + int64_t(t) * out_stride + int64_t(h) * HEAD_DIM;
#pragma unroll
      for (int e = 0; e < kDimsPerLane; ++e) dst[lane + 32 * e] = o[rr][e] * inv_l;
    } else {
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

// Merges the splits' partial softmaxes: out = sum_s o_s e^(m_s - M) / sum_s l_s e^(m_s - M).
// One block per (token, head), one thread per dimension.
__global__ void attention_combine_kernel(const float* __restrict__ part_o,   // [n_splits, n_tokens, n_head, head_dim]
                                         const float* __restrict__ part_ml,  // [n_splits, n_tokens, n_head, 2]
                                         float* __restrict__ out,            // [n_tokens, n_head * head_dim]
                                         int n_splits, int n_tokens, int n_head, int head_dim,
                                         int64_t out_stride) {
  const int th = blockIdx.x, t = th / n_head, h = th % n_head, d = threadIdx.x;
  const int64_t split_stride = int64_t(n_tokens) * n_head;
  float mx = -INFINITY;
  for (int s = 0; s < n_splits; ++s) mx = fmaxf(mx, part_ml[(s * split_stride + th) * 2]);
  float sum = 0.f, acc = 0.f;
  if (mx != -INFINITY) {
    for (int s = 0; s < n_splits; ++s) {
      const float ms = part_ml[(s * split_stride + th) * 2];
      if (ms == -INFINITY) continue;  // an empty split
      const float w = expf(ms - mx);
      sum += part_ml[(s * split_stride + th) * 2 + 1] * w;
      acc += part_o[(s * split_stride + th) * head_dim + d] * w;
    }
  }
  out[int64_t(t) * out_stride + int64_t(h) * head_dim + d] = sum > 0.f ? acc / sum : 0.f;
}

template <int HEAD_DIM, typename TC>
cudaError_t launch(const float* q, const void* k_cache, const void* v_cache, const int32_t* pos, float* out,
                   int n_tokens, int n_head, int n_head_kv, int n_ctx, int64_t q_stride, int64_t out_stride,
                   float scale, int n_splits, float* workspace, cudaStream_t stream) {
  const int n_rows = n_tokens * (n_head / n_head_kv);
  const dim3 grid((n_rows + kRowsPerBlock - 1) / kRowsPerBlock, n_head_kv, n_splits);
  float* part_o = workspace;
  float* part_ml = n_splits > 1 ? workspace + size_t(n_splits) * n_tokens * n_head * HEAD_DIM : nullptr;
  attention_kernel<HEAD_DIM, TC><<<grid, kThreads, 0, stream>>>(
      q, static_cast<const TC*>(k_cache), static_cast<const TC*>(v_cache), pos, out, part_o, part_ml, n_tokens,
      n_head, n_head_kv, n_ctx, q_stride, out_stride, scale);
  HERD_CUDA_TRY(cudaGetLastError());
  if (n_splits > 1) {
    attention_combine_kernel<<<n_tokens * n_head, HEAD_DIM, 0, stream>>>(part_o, part_ml, out, n_splits, n_tokens,
                                                                          n_head, HEAD_DIM, out_stride);
  }
  HERD_LAUNCH_CHECK();
}

}  // namespace

int attention_n_splits(int n_tokens, int n_head, int n_head_kv, int n_sm) {
  const int n_rows = n_tokens * (n_head / std::max(1, n_head_kv));
  const int base = (n_rows + kRowsPerBlock - 1) / kRowsPerBlock * n_head_kv;
  // About four blocks per multiprocessor hide the load latency of the (un-pipelined) tile loop.
  const int target = 4 * std::max(1, n_sm);
  if (base >= target / 2) return 1;
  return std::min(kMaxSplits, (target + base - 1) / base);
}

size_t attention_workspace_bytes(int n_splits, int n_tokens, int n_head, int head_dim) {
  if (n_splits <= 1) return 0;
  return size_t(n_splits) * n_tokens * n_head * (head_dim + 2) * sizeof(float);
}

cudaError_t attention(const float* q, const void* k_cache, const void* v_cache, ElemType cache_type,
                      const int32_t* pos, float* out, int n_tokens, int n_head, int n_head_kv, int head_dim,
                      int n_ctx, int64_t q_stride, int64_t out_stride, float scale, int n_splits,
                      float* workspace, cudaStream_t stream) {
  if (n_tokens == 0) return cudaSuccess;
  if (n_head_kv <= 0 || n_head % n_head_kv != 0 || n_splits < 1 || n_splits > 65535 || n_ctx <= 0 ||
      (n_splits > 1 && workspace == nullptr) || !aligned16(k_cache) || !aligned16(v_cache))
    return cudaErrorInvalidValue;
  // One switch: the head_dims Llama uses (64, 128; 32 for small test models) x the cache types
  // we store. 6 instantiations.
#define HERD_ATTN(D, T) \
  launch<D, T>(q, k_cache, v_cache, pos, out, n_tokens, n_head, n_head_kv, n_ctx, q_stride, out_stride, scale, n_splits, workspace, stream)
  switch (head_dim * 4 + int(cache_type)) {
    case 32 * 4 + int(ElemType::f32): return HERD_ATTN(32, float);
    case 32 * 4 + int(ElemType::bf16): return HERD_ATTN(32, __nv_bfloat16);
    case 64 * 4 + int(ElemType::f32): return HERD_ATTN(64, float);
    case 64 * 4 + int(ElemType::bf16): return HERD_ATTN(64, __nv_bfloat16);
    case 128 * 4 + int(ElemType::f32): return HERD_ATTN(128, float);
    case 128 * 4 + int(ElemType::bf16): return HERD_ATTN(128, __nv_bfloat16);
    default: return cudaErrorInvalidValue;
  }
#undef HERD_ATTN
}

}  // namespace herd::kernels
