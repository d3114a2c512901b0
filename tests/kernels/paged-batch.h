// A paged-attention step as the engine builds it, for the attention tests: sequences' query runs
// and key counts, the int32 arrays, and the bound the tensor-core kernel is held to.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace herd {

struct SeqSpec {
  int32_t seq_len, q_len;  // keys after this step's write; query tokens this step (0: none)
};

// The int32 arrays of one step, as the engine builds them, except that physical block ids are a
// random permutation of the whole pool (never contiguous, never in order) and the pool has spare
// blocks nobody owns.
struct PagedBatch {
  int64_t n_tokens = 0, n_seqs = 0, n_blocks = 0, max_blocks = 0;
  std::vector<int32_t> qsl, seq_lens, block_table;
};

inline PagedBatch make_batch(const std::vector<SeqSpec>& seqs, int64_t block_size, uint32_t seed) {
  PagedBatch b;
  b.n_seqs = int64_t(seqs.size());
  std::vector<int64_t> n_used;
  for (const SeqSpec& s : seqs) {
    n_used.push_back((s.seq_len + block_size - 1) / block_size);
    b.n_blocks += n_used.back();
    b.max_blocks = std::max(b.max_blocks, n_used.back());
  }
  b.n_blocks += 3;
  b.max_blocks += 2;  // table columns past a sequence's blocks exist and must not be read
  std::vector<int32_t> perm(static_cast<size_t>(b.n_blocks));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
  b.block_table.assign(size_t(b.n_seqs * b.max_blocks), 0);
  b.qsl.push_back(0);
  size_t next = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int64_t i = 0; i < n_used[s]; ++i) b.block_table[s * size_t(b.max_blocks) + size_t(i)] = perm[next++];
    b.qsl.push_back(b.qsl.back() + seqs[s].q_len);
    b.seq_lens.push_back(seqs[s].seq_len);
  }
  b.n_tokens = b.qsl.back();
  return b;
}

// What the tensor-core kernel may differ by, per element, beyond f32 arithmetic: each probability
// is rounded to bf16 (relative error <= 2^-9) before it weights its V row, while the normaliser sums
// the unrounded ones, so |error| <= 2^-9 * 2 * sum_i p_i |v_i|; 2^-8 of the |V| output, plus the
// f32 kernel's tolerance.
inline std::vector<float> flash_tolerance(const std::vector<float>& want, const std::vector<float>& abs_v) {
  std::vector<float> tol(want.size());
  for (size_t i = 0; i < want.size(); ++i) tol[i] = 2e-5f + 1e-4f * std::fabs(want[i]) + abs_v[i] / 256.f;
  return tol;
}

}  // namespace herd
