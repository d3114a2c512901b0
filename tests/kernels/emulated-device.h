// Runs a CUDA kernel on the CPU: each thread of a block is an OS thread, __syncthreads a barrier,
// and the warp-level primitives of kernels/mma-primitives.cuh (ldmatrix, mma.sync m16n8k16 BF16,
// cp.async) plus warp shuffles and reductions are re-implemented here from the PTX ISA's
// definitions of their fragment layouts, independently of the kernels that use them. Blocks run
// one after another. Slow (a thread switch per warp-level operation), so for small shapes only:
// it checks a kernel's index, fragment and mask arithmetic in CI, where no GPU is.
//
// Include this before the kernel's header (which then skips kernels/mma-primitives.cuh).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#define HERD_EMULATED_DEVICE 1
#undef __launch_bounds__
#define __launch_bounds__(...)

inline thread_local uint3 threadIdx;
inline uint3 blockIdx;  // blocks run one at a time
inline dim3 gridDim, blockDim;

namespace herd::kernels {

template <typename T>
inline T min(T a, T b) { return b < a ? b : a; }
template <typename T>
inline T max(T a, T b) { return a < b ? b : a; }
template <typename T>
inline T __ldg(const T* p) { return *p; }

namespace emu {

constexpr int kMaxSmem = 96 * 1024;

// One block's shared state: its barrier, each warp's barrier and exchange slots, its shared memory.
struct Block {
  explicit Block(int n_threads) : sync(n_threads) {
    for (int w = 0; w < n_threads / 32; ++w) warps.push_back(std::make_unique<std::barrier<>>(32));
    slots.resize(size_t(n_threads));
  }
  struct Slot {
    const void* ptr;
    uint32_t a[4], b[2];
    float f;
  };
  std::barrier<> sync;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<Slot> slots;  // one per thread
  alignas(16) unsigned char smem[kMaxSmem];
};
inline Block* g_block = nullptr;

inline int lane() { return int(threadIdx.x) & 31; }
inline Block::Slot& slot_of(int ln) { return g_block->slots[size_t((int(threadIdx.x) & ~31) + ln)]; }
inline void warp_sync() { g_block->warps[size_t(threadIdx.x >> 5)]->arrive_and_wait(); }

inline float f32_bits(uint32_t w) {
  float f;
  std::memcpy(&f, &w, 4);
  return f;
}
inline float bf16_lo(uint32_t w) { return f32_bits(w << 16); }
inline float bf16_hi(uint32_t w) { return f32_bits(w & 0xffff0000u); }
inline uint32_t bits(__nv_bfloat16 v) {
  uint16_t b;
  std::memcpy(&b, &v, 2);
  return b;
}
inline uint32_t pair(__nv_bfloat16 lo, __nv_bfloat16 hi) { return bits(lo) | (bits(hi) << 16); }

// Runs kernel() as grid x block threads (one-dimensional blocks).
template <typename F>
void launch(dim3 grid, int n_threads, F&& kernel) {
  gridDim = grid;
  blockDim = dim3(unsigned(n_threads));
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        blockIdx = uint3{x, y, z};
        auto block = std::make_unique<Block>(n_threads);
        g_block = block.get();
        std::vector<std::thread> threads;
        for (int t = 0; t < n_threads; ++t)
          threads.emplace_back([&kernel, t] {
            threadIdx = uint3{unsigned(t), 0, 0};
            kernel();
          });
        for (std::thread& th : threads) th.join();
        g_block = nullptr;
      }
}

}  // namespace emu

inline void __syncthreads() { emu::g_block->sync.arrive_and_wait(); }

inline float __shfl_xor_sync(unsigned, float v, int mask) {
  emu::slot_of(emu::lane()).f = v;
  emu::warp_sync();
  const float r = emu::slot_of(emu::lane() ^ mask).f;
  emu::warp_sync();
  return r;
}

inline float __shfl_sync(unsigned, float v, int src_lane) {
  emu::slot_of(emu::lane()).f = v;
  emu::warp_sync();
  const float r = emu::slot_of(src_lane & 31).f;
  emu::warp_sync();
  return r;
}

inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = std::max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

inline unsigned char* dynamic_smem() { return emu::g_block->smem; }

// Shared-memory atomics: the block's threads are OS threads here.
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return std::atomic_ref<unsigned long long>(*p).fetch_add(v);
}
inline int atomicAdd(int* p, int v) { return std::atomic_ref<int>(*p).fetch_add(v); }

// Rounded f32 arithmetic that the device compiler may not fuse; plain operators on the host.
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }

// cp.async completes at once here, so commit and wait have nothing to do.
inline void cp_async16(void* dst, const void* src, int src_bytes) {
  if (src_bytes == 16) std::memcpy(dst, src, 16);
  else std::memset(dst, 0, 16);
}
inline void cp_async_commit() {}
template <int N>
inline void cp_async_wait() {}

// ldmatrix .x4: lane i names row i % 8 of matrix i / 8 (8 b16 values). Without .trans, lane T
// receives row T / 4, columns 2 (T % 4) and 2 (T % 4) + 1 of each matrix; with .trans, rows
// 2 (T % 4) and 2 (T % 4) + 1 of column T / 4.
inline void ldmatrix_impl(uint32_t (&r)[4], const __nv_bfloat16* p, bool trans) {
  const int T = emu::lane();
  emu::slot_of(T).ptr = p;
  emu::warp_sync();
  for (int j = 0; j < 4; ++j) {
    auto row = [&](int i) { return static_cast<const __nv_bfloat16*>(emu::slot_of(8 * j + i).ptr); };
    if (!trans) r[j] = emu::pair(row(T / 4)[2 * (T % 4)], row(T / 4)[2 * (T % 4) + 1]);
    else r[j] = emu::pair(row(2 * (T % 4))[T / 4], row(2 * (T % 4) + 1)[T / 4]);
  }
  emu::warp_sync();
}
inline void ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16* p) { ldmatrix_impl(r, p, false); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const __nv_bfloat16* p) { ldmatrix_impl(r, p, true); }

// mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32, with group g = lane / 4 and t = lane % 4:
//   A (16 x 16): a[0] = A[g][2t, 2t+1], a[1] = A[g+8][2t, 2t+1], a[2] = A[g][2t+8, 2t+9], a[3] = A[g+8][2t+8, 2t+9]
//   B (16 x 8):  b0 = B[2t, 2t+1][g], b1 = B[2t+8, 2t+9][g]
//   C, D (16 x 8): d[0], d[1] = D[g][2t, 2t+1], d[2], d[3] = D[g+8][2t, 2t+1]
inline void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  const int T = emu::lane();
  auto& me = emu::slot_of(T);
  std::memcpy(me.a, a, sizeof(me.a));
  me.b[0] = b0;
  me.b[1] = b1;
  emu::warp_sync();
  float A[16][16], B[16][8];
  for (int L = 0; L < 32; ++L) {
    const auto& s = emu::slot_of(L);
    const int g = L / 4, t = L % 4;
    const int rows[4] = {g, g + 8, g, g + 8}, cols[4] = {2 * t, 2 * t, 2 * t + 8, 2 * t + 8};
    for (int i = 0; i < 4; ++i) {
      A[rows[i]][cols[i]] = emu::bf16_lo(s.a[i]);
      A[rows[i]][cols[i] + 1] = emu::bf16_hi(s.a[i]);
    }
    B[2 * t][g] = emu::bf16_lo(s.b[0]);
    B[2 * t + 1][g] = emu::bf16_hi(s.b[0]);
    B[2 * t + 8][g] = emu::bf16_lo(s.b[1]);
    B[2 * t + 9][g] = emu::bf16_hi(s.b[1]);
  }
  emu::warp_sync();
  const int g = T / 4, t = T % 4;
  for (int i = 0; i < 4; ++i) {
    const int row = i < 2 ? g : g + 8, col = 2 * t + (i & 1);
    float acc = d[i];
    for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];
    d[i] = acc;
  }
}

}  // namespace herd::kernels
