// The sampling kernel itself (launched by kernels/sampling.cu); a header of its own so that
// tests/kernels also runs it on an emulated device in CI (see flash-attention-kernel.cuh).
//
// It follows sampling/sampler.cpp step by step, on one block per drawn token. The host sorts; the
// kernel selects instead: every cut the chain makes (the k-th logit, the top-p boundary, the drawn
// token) is "the first element, in the host's order, at which a running sum reaches a target",
// found by a radix select over the elements' order keys (four 8-bit digits) and, among the
// elements that share the final key, a scan in id order. Probabilities enter those sums as
// fixed-point integers, so a sum does not depend on the order of its additions: the passes agree
// with each other exactly and the result is deterministic.
#pragma once

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstring>

#include "kernels/common.cuh"
#include "kernels/sampling.cuh"

namespace herd::kernels {
namespace sampling {

#ifdef HERD_EMULATED_DEVICE
using std::isfinite;  // a device builtin; the host's is std::'s
#endif

constexpr int kThreads = 256;
using u64 = unsigned long long;

// z in [0, 1] (a probability before normalisation) as a multiple of 2^-43: kSampleMaxVocab of them
// sum to at most 2^63. A z under 2^-43 counts as 0: such a token is not drawn (the host would draw it
// with a probability below 1e-13 of the kept mass).
constexpr double kMassScale = 0x1p43;

__device__ __forceinline__ u64 mass(float z) { return z > 0.f ? u64(double(z) * kMassScale) : 0; }

// A float's rank as an unsigned key: a larger value has a larger key; -0 and +0 share one, as they
// compare equal on the host.
__device__ __forceinline__ uint32_t order_key(float v) {
  uint32_t b;
  memcpy(&b, &v, 4);
  if (b == 0x80000000u) b = 0;
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// An element of the order (key descending, id ascending), the sampler's total order.
struct Cut {
  uint32_t key;
  int32_t id;
};
// Whether (key, id) comes no later than the cut: the kept prefix the cut ends.
__device__ __forceinline__ bool within(uint32_t key, int32_t id, Cut c) {
  return key > c.key || (key == c.key && id <= c.id);
}
constexpr Cut kKeepAll = {0, INT_MAX};

struct Smem {
  u64 bins[256];
  u64 part[kThreads];
  double dpart[kThreads];
  float val[kThreads];
  int32_t idx[kThreads];
  int32_t top_ids[kSampleMaxTop];
  float top_vals[kSampleMaxTop];
  int32_t n_top;
  int32_t found;
  uint32_t digit;
  u64 above;
};

// Sums over the block (a tree in shared memory: the same additions in the same order every time).
// scratch: kThreads values of shared memory.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  const int t = int(threadIdx.x);
  scratch[t] = v;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (t < w) scratch[t] += scratch[t + w];
    __syncthreads();
  }
  const T r = scratch[0];
  __syncthreads();  // scratch is the next call's
  return r;
}

// The largest value and, among equal ones, the lowest index (std::max_element's pick).
__device__ __forceinline__ void block_argmax(float& v, int32_t& i, Smem& s) {
  const int t = int(threadIdx.x);
  s.val[t] = v;
  s.idx[t] = i;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (t < w) {
      const float v2 = s.val[t + w];
      const int32_t i2 = s.idx[t + w];
      if (v2 > s.val[t] || (v2 == s.val[t] && i2 < s.idx[t])) s.val[t] = v2, s.idx[t] = i2;
    }
    __syncthreads();
  }
  v = s.val[0];
  i = s.idx[0];
  __syncthreads();
}

// In id order, the element at which the running sum of weight(i) reaches need (1 <= need <= the
// total). Each thread takes a contiguous run of ids; a scan of the runs' sums finds the one run
// that holds it.
template <typename Weight>
__device__ int32_t first_reaching_by_id(const Weight& weight, int n, u64 need, Smem& s) {
  const int t = int(threadIdx.x);
  const int run = (n + kThreads - 1) / kThreads;
  const int begin = t * run < n ? t * run : n, end = begin + run < n ? begin + run : n;
  u64 sum = 0;
  for (int i = begin; i < end; ++i) sum += weight(i);
  s.part[t] = sum;
  if (t == 0) s.found = -1;
  __syncthreads();
  for (int off = 1; off < kThreads; off <<= 1) {  // inclusive scan (Hillis-Steele)
    const u64 add = t >= off ? s.part[t - off] : 0;
    __syncthreads();
    s.part[t] += add;
    __syncthreads();
  }
  const u64 before = s.part[t] - sum;
  if (before < need && need <= s.part[t]) {
    u64 cum = before;
    for (int i = begin; i < end; ++i) {
      cum += weight(i);
      if (cum >= need) {
        s.found = i;
        break;
      }
    }
  }
  __syncthreads();
  const int32_t found = s.found;
  __syncthreads();
  return found;
}

// The first element, in the order (key descending, id ascending), at which the running weight
// reaches target (1 <= target <= the total weight). elem(i, key, weight) describes element i; a
// weight of 0 leaves it out.
template <typename Elem>
__device__ Cut select_reaching(const Elem& elem, int n, u64 target, Smem& s) {
  const int t = int(threadIdx.x);
  uint32_t prefix = 0, mask = 0;  // the key's digits found so far
  u64 above = 0;                  // the weight of the elements whose keys rank above the prefix
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = t; b < 256; b += kThreads) s.bins[b] = 0;
    __syncthreads();
    for (int i = t; i < n; i += kThreads) {
      uint32_t key;
      u64 w;
      elem(i, key, w);
      if (w != 0 && (key & mask) == prefix) atomicAdd(&s.bins[(key >> shift) & 0xffu], w);
    }
    __syncthreads();
    if (t == 0) {
      int d = 255;
      for (; d > 0; --d) {  // digit 0 when no higher one reaches it: the target lies within the prefix
        if (above + s.bins[d] >= target) break;
        above += s.bins[d];
      }
      s.digit = uint32_t(d);
      s.above = above;
    }
    __syncthreads();
    // Thread 0 writes digit and above again only after two more barriers, when all have read them.
    prefix |= s.digit << shift;
    mask |= 0xffu << shift;
    above = s.above;
  }
  const int32_t id = first_reaching_by_id(
      [&](int i) {
        uint32_t key;
        u64 w;
        elem(i, key, w);
        return key == prefix ? w : u64(0);
      },
      n, target - above, s);
  return {prefix, id};
}

// log(sum(exp(raw))) of a finite row, as sampling/logprobs.cpp computes it: the maximum factored
// out, each term in float, the sum in double.
__device__ __forceinline__ double row_lse(const float* __restrict__ raw, int n, Smem& s) {
  const int t = int(threadIdx.x);
  float m = -INFINITY;
  int32_t m_id = INT_MAX;
  for (int i = t; i < n; i += kThreads)
    if (raw[i] > m) m = raw[i], m_id = i;
  block_argmax(m, m_id, s);
  double sum = 0.0;
  for (int i = t; i < n; i += kThreads) sum += double(expf(raw[i] - m));
  return double(m) + log(block_sum(sum, s.dpart));
}

// One block per SampleRow; see sampling.cuh.
__global__ void __launch_bounds__(kThreads)
    sample_kernel(const float* __restrict__ logits, int64_t stride, int n, const SampleRow* __restrict__ rows,
                  const int32_t* __restrict__ penalty_ids, const int32_t* __restrict__ penalty_counts,
                  float* __restrict__ work, SampleOut* __restrict__ out_rows) {
  Smem& s = *reinterpret_cast<Smem*>(dynamic_smem());
  const int t = int(threadIdx.x);
  const SampleRow r = rows[blockIdx.x];
  const float* raw = logits + int64_t(r.row) * stride;  // [n]
  float* w = work + int64_t(blockIdx.x) * n;             // [n]
  SampleOut& out = out_rows[blockIdx.x];

  if (r.score_token >= 0) {  // a prompt token's score: its logprob, nothing picked
    u64 bad = 0;
    for (int i = t; i < n; i += kThreads) bad += !isfinite(raw[i]);
    if (block_sum(bad, s.part) != 0) {
      if (t == 0) out.id = -1;
      return;
    }
    const double lse = row_lse(raw, n, s);
    if (t == 0) {
      out.id = r.score_token;
      out.logprob = float(double(raw[r.score_token]) - lse);
    }
    return;
  }

  // 1. The penalised row, in the host's order: repetition, then frequency and presence.
  u64 bad = 0;
  for (int i = t; i < n; i += kThreads) {
    w[i] = raw[i];
    bad += !isfinite(raw[i]);
  }
  __syncthreads();
  for (int j = r.penalty_begin + t; j < r.penalty_end; j += kThreads) {
    const int32_t id = penalty_ids[j];  // distinct within a row: one thread per element
    float l = w[id];
    if (r.repetition_penalty != 1.f) l = l < 0.f ? l * r.repetition_penalty : l / r.repetition_penalty;
    const int32_t c = penalty_counts[j];
    // Rounded as the host rounds it, not fused into one multiply-add.
    if (c > 0) l = __fsub_rn(l, __fadd_rn(__fmul_rn(float(c), r.frequency_penalty), r.presence_penalty));
    w[id] = l;
  }
  __syncthreads();

  // 2. The maximum, first among equals; a row with a NaN or an infinity is reported, not sampled.
  float best = -INFINITY;
  int32_t best_id = INT_MAX;
  for (int i = t; i < n; i += kThreads)
    if (w[i] > best) best = w[i], best_id = i;  // ascending ids: the first of equals stays
  block_argmax(best, best_id, s);
  if (block_sum(bad, s.part) != 0 || !isfinite(best)) {
    if (t == 0) out.id = -1;
    return;
  }

  int32_t picked = best_id;
  if (r.temperature != 0.f) {
    // 3. Top-k by logit, then z = exp((l - max) / T) for the kept tokens, -1 for the others.
    const bool top_k_on = r.top_k > 0 && r.top_k < n;
    Cut k_cut = kKeepAll;
    if (top_k_on)
      k_cut = select_reaching(
          [&](int i, uint32_t& key, u64& wt) {
            key = order_key(w[i]);
            wt = 1;
          },
          n, u64(r.top_k), s);
    // A scale capped at FLT_MAX: a tiny temperature makes the row one-hot, never NaN.
    const float scale = float(1.0 / double(r.temperature) < double(FLT_MAX) ? 1.0 / double(r.temperature)
                                                                              : double(FLT_MAX));
    u64 total = 0;
    for (int i = t; i < n; i += kThreads) {
      const float l = w[i];
      w[i] = within(order_key(l), i, k_cut) ? expf((l - best) * scale) : -1.f;
      total += mass(w[i]);
    }
    __syncthreads();
    total = block_sum(total, s.part);

    // In the probabilities' order (z descending, ids ascending), as the host sorts them.
    const auto z_elem = [&](int i, uint32_t& key, u64& wt) {
      key = order_key(w[i]);
      wt = mass(w[i]);
    };
    // 4. Top-p: the shortest prefix whose mass reaches top_p of the whole.
    if (r.top_p < 1.f) {
      const double want = ceil(double(r.top_p) * double(total));
      const u64 target = want < 1.0 ? 1 : want > double(total) ? total : u64(want);
      const Cut p_cut = select_reaching(z_elem, n, target, s);
      for (int i = t; i < n; i += kThreads)
        if (!within(order_key(w[i]), i, p_cut)) w[i] = -1.f;
      __syncthreads();
    }
    // 5. Min-p: the largest z is exp(0) = 1, so p < min_p * p_max is z < min_p.
    if (r.min_p > 0.f) {
      for (int i = t; i < n; i += kThreads)
        if (w[i] < r.min_p) w[i] = -1.f;
      __syncthreads();
    }
    // 6. The draw: the first kept token at which the running mass exceeds u of the kept mass,
    // walking the host's order (sorted once top-k or top-p sorted it, else by id).
    u64 kept = 0;
    for (int i = t; i < n; i += kThreads) kept += mass(w[i]);
    kept = block_sum(kept, s.part);
    const double at = floor(r.u * double(kept)) + 1.0;
    const u64 need = at > double(kept) ? kept : u64(at);
    if (top_k_on || r.top_p < 1.f) picked = select_reaching(z_elem, n, need, s).id;
    else picked = first_reaching_by_id([&](int i) { return mass(w[i]); }, n, need, s);
  }
  if (t == 0) out.id = picked;
  if (r.n_top <= 0) return;

  // 7. Logprobs of the raw row: the picked token's and the n_top most likely.
  const double lse = row_lse(raw, n, s);
  const int n_top = r.n_top < kSampleMaxTop ? (r.n_top < n ? r.n_top : n) : (kSampleMaxTop < n ? kSampleMaxTop : n);
  const Cut top_cut = select_reaching(
      [&](int i, uint32_t& key, u64& wt) {
        key = order_key(raw[i]);
        wt = 1;
      },
      n, u64(n_top), s);
  if (t == 0) s.n_top = 0;
  __syncthreads();
  for (int i = t; i < n; i += kThreads)
    if (within(order_key(raw[i]), i, top_cut)) {
      const int slot = atomicAdd(&s.n_top, 1);
      s.top_ids[slot] = i;
      s.top_vals[slot] = raw[i];
    }
  __syncthreads();
  if (t == 0) {
    for (int a = 1; a < n_top; ++a)  // insertion sort of at most kSampleMaxTop: descending, ties by id
      for (int b = a; b > 0; --b) {
        const bool earlier = s.top_vals[b] > s.top_vals[b - 1] ||
                             (s.top_vals[b] == s.top_vals[b - 1] && s.top_ids[b] < s.top_ids[b - 1]);
        if (!earlier) break;
        const float v = s.top_vals[b];
        const int32_t id = s.top_ids[b];
        s.top_vals[b] = s.top_vals[b - 1], s.top_ids[b] = s.top_ids[b - 1];
        s.top_vals[b - 1] = v, s.top_ids[b - 1] = id;
      }
    out.logprob = float(double(raw[picked]) - lse);
    for (int a = 0; a < n_top; ++a) {
      out.top_id[a] = s.top_ids[a];
      out.top_logprob[a] = float(double(s.top_vals[a]) - lse);
    }
  }
}

}  // namespace sampling
}  // namespace herd::kernels
