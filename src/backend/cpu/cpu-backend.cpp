// The CPU backend: the portable reference every CUDA kernel is tested against (exact mode: plain
// loops, weights dequantized to f32, f32 accumulation), and by default the fast kernels of
// backend/cpu/cpu-kernels.h for the matrix products. Parallel over rows with a thread pool.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/fast-matmul.h"
#include "common/check.h"
#include "common/quant.h"
#include "common/threadpool.h"

namespace herd {
namespace {

const float* f32p(const Tensor& t) { return static_cast<const float*>(t.data()); }
float* f32p(Tensor& t) { return static_cast<float*>(t.data()); }
const int32_t* i32p(const Tensor& t) { return static_cast<const int32_t*>(t.data()); }

void check_f32(const Tensor& t, const char* what) {
  HERD_CHECK(t.dtype == DType::f32, what, " must be f32, is ", dtype_name(t.dtype));
}

// dst[0, n) = row of a stored tensor, converted to f32 (quantized rows block by block).
void load_row(const void* base, DType dtype, int64_t row, int64_t n, float* dst) {
  dequantize_row(dtype, static_cast<const uint8_t*>(base) + dtype_nbytes(dtype, row * n), dst, n);
}

float dot(const float* a, const float* b, int64_t n) {
  // 16 independent partial sums let the compiler keep a full vector register of them.
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
#pragma omp simd
    for (int j = 0; j < 16; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float s = 0.f;
  for (; i < n; ++i) s += a[i] * b[i];
  for (float v : acc) s += v;
  return s;
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(int n_threads, bool exact, bool kv_fp8)
      : pool_(n_threads), exact_(exact), kv_fp8_(kv_fp8), kernels_(resolve_cpu_kernels(detect_cpu_level())),
        fast_(pool_, kernels_) {}

  // "cpu (avx512)": the kernels in use, or the exact reference path.
  std::string name() const override {
    return str_cat("cpu (", exact_ ? "exact" : cpu_level_name(fast_.level()), !exact_ && fast_.amx() ? "+amx" : "", ")");
  }

  size_t free_memory() const override {
    std::ifstream meminfo("/proc/meminfo");
    for (std::string line; std::getline(meminfo, line);)
      if (line.rfind("MemAvailable:", 0) == 0) return size_t(std::stoull(line.substr(13))) * 1024;  // kB
    return 0;
  }

  Tensor upload_weight(const TensorView& host) override {
    // Alias the mapped file: weights are never copied on the CPU.
    Tensor t{host.dtype, host.shape, std::shared_ptr<void>(const_cast<void*>(host.data), [](void*) {}), host.col_perm};
    if (!exact_) fast_.add_weight(t);  // repacked for the multi-token kernels at its first product
    return t;
  }

  Tensor alloc(DType dtype, Shape shape) override {
    const size_t n = size_t(shape_numel(shape)) * dtype_size(dtype);
    // calloc: large buffers (the KV cache) come as untouched zero pages, paid for when used.
    void* p = std::calloc(std::max<size_t>(n, 1), 1);
    HERD_CHECK(p != nullptr, "out of host memory allocating ", n, " bytes");
    return Tensor{dtype, std::move(shape), std::shared_ptr<void>(p, std::free)};
  }

  void write(Tensor& dst, const void* src, size_t nbytes) override {
    HERD_CHECK(nbytes <= dst.nbytes());
    std::memcpy(dst.data(), src, nbytes);
  }

  void copy_blocks(Tensor& t, const std::vector<std::pair<int32_t, int32_t>>& from_to) override {
    const size_t block_bytes = t.nbytes() / size_t(t.dim(0));
    auto* base = static_cast<uint8_t*>(t.data());
    for (auto [from, to] : from_to) {
      HERD_CHECK(from >= 0 && to >= 0 && from < t.dim(0) && to < t.dim(0), "block copy ", from, " -> ", to);
      std::memcpy(base + size_t(to) * block_bytes, base + size_t(from) * block_bytes, block_bytes);
    }
  }

  void read(const Tensor& src, void* dst, size_t nbytes) override {
    HERD_CHECK(nbytes <= src.nbytes());
    std::memcpy(dst, src.data(), nbytes);
  }

  void embed(const Tensor& table, const Tensor& ids, Tensor& out) override {
    const int64_t n_vocab = table.dim(0), n_embd = table.dim(1), n_tokens = ids.numel();
    check_f32(out, "embed output");
    HERD_CHECK(out.numel() == n_tokens * n_embd);
    for (int64_t t = 0; t < n_tokens; ++t) {
      const int32_t id = i32p(ids)[t];
      if (id == -1) {
        std::fill_n(f32p(out) + t * n_embd, n_embd, 0.0f);
        continue;
      }
      HERD_CHECK(id >= 0 && id < n_vocab, "row ", id, " outside [0, ", n_vocab, ")");
      load_row(table.data(), table.dtype, id, n_embd, f32p(out) + t * n_embd);
    }
  }

  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override {
    const int64_t d = x.dim(-1), n = x.numel() / d;
    check_f32(x, "rms_norm input");
    const float* wf = f32p(w);
    if (w.dtype != DType::f32) {  // norms are f32 in every format herd loads; others converted once
      norm_w_.resize(size_t(d));
      load_row(w.data(), w.dtype, 0, d, norm_w_.data());
      wf = norm_w_.data();
    }
    for_rows(n, d, [&](int64_t r) {
      const float* xr = f32p(x) + r * d;
      float* yr = f32p(out) + r * d;
      const float scale = 1.0f / std::sqrt(dot(xr, xr, d) / float(d) + eps);
      for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * scale * wf[i];
    });
  }

  // The reference is the composition itself: the CUDA kernel fuses the two passes.
  void add_rms_norm(Tensor& x, const Tensor& y, const Tensor& w, float eps, Tensor& out) override {
    add(x, y);
    rms_norm(x, w, eps, out);
  }

  void matmul(const Tensor& x, const Tensor& w, Tensor& out) override {
    const MatmulOut part{w, out};
    matmul_shared(x, {&part, 1});
  }

  void matmul_shared(const Tensor& x, std::span<const MatmulOut> parts) override {
    check_f32(x, "matmul input");
    const int64_t k = x.dim(-1), n = x.numel() / k;
    for (const MatmulOut& p : parts) {
      HERD_CHECK(p.w.dim(1) == k, "matmul: x has ", k, " columns, w ", shape_str(p.w.shape));
      HERD_CHECK(p.out.numel() == n * p.w.dim(0), "matmul: out ", shape_str(p.out.shape), " for ", n, " x ", p.w.dim(0));
    }
    // Runs of weights with one column order share their input (q, k and v of an act-ordered GPTQ
    // layer have one order, as they were quantized against the same activations).
    for (size_t i = 0, j; i < parts.size(); i = j) {
      const int32_t* perm = parts[i].w.col_perm;
      for (j = i + 1; j < parts.size() && parts[j].w.col_perm == perm; ++j) {
      }
      const Tensor xs = perm ? in_column_order(x, perm) : x;
      if (!exact_) {
        fast_.run(xs, parts.subspan(i, j - i));
        continue;
      }
      for (size_t p = i; p < j; ++p) matmul_exact(xs, parts[p].w, parts[p].out);
    }
  }

  // x's columns in a weight's stored order: x'[t, c] = x[t, perm[c]]; x: [n, k] f32.
  Tensor in_column_order(const Tensor& x, const int32_t* perm) {
    const int64_t k = x.dim(-1), n = x.numel() / k;
    permuted_.resize(size_t(x.numel()));
    const float* xs = f32p(x);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c = 0; c < k; ++c) permuted_[size_t(t * k + c)] = xs[t * k + perm[c]];
    return Tensor{DType::f32, x.shape, std::shared_ptr<void>(permuted_.data(), [](void*) {})};
  }

  // The reference: each weight row converted to f32 once and used for every token.
  void matmul_exact(const Tensor& x, const Tensor& w, Tensor& out) {
    const int64_t k = x.dim(-1), n = x.numel() / k, m = w.dim(0);
    const float* xs = f32p(x);
    float* ys = f32p(out);
    pool_.parallel_for(m, [&](int64_t begin, int64_t end) {
      std::vector<float> row(static_cast<size_t>(k));
      for (int64_t j = begin; j < end; ++j) {
        const float* wr = row.data();
        if (w.dtype == DType::f32) {
          wr = static_cast<const float*>(w.data()) + j * k;
        } else {
          load_row(w.data(), w.dtype, j, k, row.data());
        }
        for (int64_t i = 0; i < n; ++i) ys[i * m + j] = dot(xs + i * k, wr, k);
      }
    });
  }

  // f16 halves the cache and the bytes attention reads; the exact reference keeps f32; FP8 when
  // asked, on either path.
  DType kv_dtype() const override { return kv_fp8_ ? DType::f8_e4m3 : exact_ ? DType::f32 : DType::f16; }

  // The reference is the composition itself: the CUDA kernel fuses the three passes.
  void rope_kv_write(Tensor& q, Tensor& k, const Tensor& v, const Tensor& pos, const Tensor& inv_freq,
                     const Tensor& slot_mapping, Tensor& k_cache, Tensor& v_cache, KvScales scales = {}) override {
    rope(q, pos, inv_freq);
    rope(k, pos, inv_freq);
    kv_write(k, v, slot_mapping, k_cache, v_cache, scales);
  }

  void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& query_start_loc,
                 const Tensor& seq_lens, const Tensor& block_table, Tensor& out, KvScales scales = {}) override {
    const int64_t head_dim = q.dim(-1), n_head = q.dim(-2), n_tokens = q.numel() / (n_head * head_dim);
    const int64_t n_head_kv = k_cache.dim(1), block_size = k_cache.dim(2), group = n_head / n_head_kv;
    const int64_t n_seqs = seq_lens.numel(), max_blocks = block_table.dim(-1);
    const float scale = 1.0f / std::sqrt(float(head_dim));
    const int32_t* qsl = i32p(query_start_loc);
    // Each token's sequence and absolute position, so that tokens run in parallel.
    std::vector<int32_t> seq_of(static_cast<size_t>(n_tokens)), pos_of(static_cast<size_t>(n_tokens));
    for (int64_t s = 0; s < n_seqs; ++s) {
      const int32_t q_len = qsl[s + 1] - qsl[s], len = i32p(seq_lens)[s];
      HERD_CHECK(q_len >= 0 && len >= q_len && (len + block_size - 1) / block_size <= max_blocks);
      for (int32_t j = 0; j < q_len; ++j) {
        seq_of[size_t(qsl[s] + j)] = int32_t(s);
        pos_of[size_t(qsl[s] + j)] = len - q_len + j;
      }
    }
    HERD_CHECK(qsl[n_seqs] == n_tokens, "query_start_loc ends at ", qsl[n_seqs], ", not ", n_tokens);
    HERD_CHECK(k_cache.dtype == kv_dtype() && v_cache.dtype == kv_dtype(), "KV caches of ", dtype_name(k_cache.dtype));
    const size_t elem = dtype_size(k_cache.dtype);
    const bool fp8 = k_cache.dtype == DType::f8_e4m3;
    // The fast path's f16 or FP8 rows through the kernels; the reference's f32 rows (FP8 ones
    // widened first) through plain loops. An FP8 cache's scales apply to whole scores and outputs.
    const float k_scale = fp8 ? scales.k : 1.f, v_scale = fp8 ? scales.v : 1.f;
    const DotF32Fn dot_k = exact_ ? nullptr : kernels_.dot_f32[int(k_cache.dtype)];
    const AxpyFn axpy_v = exact_ ? nullptr : kernels_.axpy[int(v_cache.dtype)];
    // (token, KV head) pairs run in parallel; the query heads of a KV group read the group's K and
    // V rows while they are in cache. Each head's arithmetic is the same as alone.
    pool_.parallel_for(n_tokens * n_head_kv, [&](int64_t begin, int64_t end) {
      std::vector<float> scores, wide(fp8 && exact_ ? size_t(head_dim) : 0);
      for (int64_t tg = begin; tg < end; ++tg) {
        const int64_t t = tg / n_head_kv, g = tg % n_head_kv;
        const int32_t* blocks = i32p(block_table) + seq_of[size_t(t)] * max_blocks;
        const int64_t n_kv = int64_t(pos_of[size_t(t)]) + 1;  // causal: keys [0, pos]
        // Row j of a cache as stored, or on the exact path as f32.
        auto row = [&](const Tensor& cache, int64_t j) -> const void* {
          const int64_t at = ((int64_t(blocks[j / block_size]) * n_head_kv + g) * block_size + j % block_size) * head_dim;
          const uint8_t* r = static_cast<const uint8_t*>(cache.data()) + size_t(at) * elem;
          if (!fp8 || !exact_) return r;
          for (int64_t i = 0; i < head_dim; ++i) wide[size_t(i)] = e4m3_to_f32(r[i]);
          return wide.data();
        };
        for (int64_t h = g * group; h < (g + 1) * group; ++h) {
          const float* qv = f32p(q) + (t * n_head + h) * head_dim;
          scores.resize(size_t(n_kv));
          float mx = -INFINITY;
          for (int64_t j = 0; j < n_kv; ++j) {
            const void* kr = row(k_cache, j);
            const float d = dot_k ? dot_k(head_dim, kr, qv) : dot(qv, static_cast<const float*>(kr), head_dim);
            scores[size_t(j)] = fp8 ? d * k_scale * scale : d * scale;
            mx = std::max(mx, scores[size_t(j)]);
          }
          float sum = 0.f;
          for (float& s : scores) sum += (s = std::exp(s - mx));
          float* o = f32p(out) + (t * n_head + h) * head_dim;
          std::fill(o, o + head_dim, 0.f);
          for (int64_t j = 0; j < n_kv; ++j) {
            const float p = scores[size_t(j)] / sum;
            const void* vr = row(v_cache, j);
            if (exact_) {
              const auto* vv = static_cast<const float*>(vr);
              for (int64_t i = 0; i < head_dim; ++i) o[i] += p * vv[i];
            } else {
              axpy_v(head_dim, p, vr, o);
            }
          }
          if (fp8)
            for (int64_t i = 0; i < head_dim; ++i) o[i] *= v_scale;
        }
      }
    });
  }

  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    const int64_t f = gate.dim(-1);
    for_rows(gate.numel() / f, f, [&](int64_t r) {
      for (int64_t i = r * f; i < (r + 1) * f; ++i) {
        const float g = f32p(gate)[i];
        f32p(out)[i] = g / (1.0f + std::exp(-g)) * f32p(up)[i];
      }
    });
  }

  void argmax(const Tensor& x, Tensor& out) override {
    const int64_t n = x.dim(-1), n_rows = x.numel() / n;
    for (int64_t r = 0; r < n_rows; ++r) {
      const float* row = f32p(x) + r * n;
      const bool finite = std::all_of(row, row + n, [](float v) { return std::isfinite(v); });
      static_cast<int32_t*>(out.data())[r] = finite ? int32_t(std::max_element(row, row + n) - row) : -1;
    }
  }

 private:
  // The parts the fused ops (add_rms_norm, rope_kv_write) are composed of.

  // In place on x: [n_tokens, n_head, head_dim] in the half-split (rotate_half) layout, with
  // angle = float(pos) * inv_freq[i] rounded to f32. pos: i32[n_tokens]; inv_freq: f32[head_dim / 2].
  void rope(Tensor& x, const Tensor& pos, const Tensor& inv_freq) {
    const int64_t head_dim = x.dim(-1), n_head = x.dim(-2), n_tokens = x.numel() / (head_dim * n_head);
    const int64_t half = head_dim / 2;
    HERD_CHECK(inv_freq.numel() == half && pos.numel() == n_tokens);
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float p = float(i32p(pos)[t]);
      for (int64_t i = 0; i < half; ++i) {
        // The angle is rounded to f32 before cos/sin, as the reference implementations do.
        const float angle = p * f32p(inv_freq)[i];
        const float c = std::cos(angle), s = std::sin(angle);
        for (int64_t h = 0; h < n_head; ++h) {
          float* v = f32p(x) + (t * n_head + h) * head_dim;
          const float a = v[i], b = v[i + half];
          v[i] = a * c - b * s;
          v[i + half] = b * c + a * s;
        }
      }
    }
  }


  // x += y, both [n, d] f32.
  void add(Tensor& x, const Tensor& y) {
    const int64_t d = x.dim(-1);
    HERD_CHECK(y.numel() == x.numel());
    for_rows(x.numel() / d, d, [&](int64_t r) {
      for (int64_t i = r * d; i < (r + 1) * d; ++i) f32p(x)[i] += f32p(y)[i];
    });
  }

  // fn(r) for rows [0, n) of d elements each: on the pool when there is enough work to share
  // (a prefill chunk), inline for a few rows (decode), where waking the pool costs more.
  template <typename Fn>
  void for_rows(int64_t n, int64_t d, const Fn& fn) {
    if (n * d < (int64_t(1) << 15)) {
      for (int64_t r = 0; r < n; ++r) fn(r);
      return;
    }
    pool_.parallel_for(n, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) fn(r);
    });
  }

  // Writes token i's k and v, [n_tokens, n_head_kv, head_dim] f32, at slot slot_mapping[i] of the
  // caches [n_blocks, n_head_kv, block_size, head_dim] of kv_dtype(); a slot of -1 is skipped.
  void kv_write(const Tensor& k, const Tensor& v, const Tensor& slot_mapping, Tensor& k_cache,
                Tensor& v_cache, KvScales scales) {
    const int64_t n_tokens = slot_mapping.numel(), head_dim = k.dim(-1), n_head_kv = k.dim(-2);
    const int64_t block_size = k_cache.dim(2), n_slots = k_cache.dim(0) * block_size;
    HERD_CHECK(k_cache.dtype == kv_dtype(), "k_cache is ", dtype_name(k_cache.dtype));
    for (int64_t t = 0; t < n_tokens; ++t) {
      const int32_t slot = i32p(slot_mapping)[t];
      if (slot < 0) continue;
      HERD_CHECK(slot < n_slots, "slot ", slot, " outside the cache of ", n_slots);
      const int64_t block = slot / block_size, offset = slot % block_size;
      for (int64_t h = 0; h < n_head_kv; ++h) {
        const int64_t dst = ((block * n_head_kv + h) * block_size + offset) * head_dim;
        const int64_t src = (t * n_head_kv + h) * head_dim;
        if (k_cache.dtype == DType::f32) {
          std::memcpy(f32p(k_cache) + dst, f32p(k) + src, size_t(head_dim) * 4);
          std::memcpy(f32p(v_cache) + dst, f32p(v) + src, size_t(head_dim) * 4);
          continue;
        }
        if (k_cache.dtype == DType::f8_e4m3) {
          auto* kc = static_cast<uint8_t*>(k_cache.data()) + dst;
          auto* vc = static_cast<uint8_t*>(v_cache.data()) + dst;
          for (int64_t i = 0; i < head_dim; ++i) {
            kc[i] = f32_to_e4m3(f32p(k)[src + i] / scales.k);
            vc[i] = f32_to_e4m3(f32p(v)[src + i] / scales.v);
          }
          continue;
        }
        auto* kc = static_cast<uint16_t*>(k_cache.data()) + dst;
        auto* vc = static_cast<uint16_t*>(v_cache.data()) + dst;
        for (int64_t i = 0; i < head_dim; ++i) {
          kc[i] = f32_to_f16(f32p(k)[src + i]);
          vc[i] = f32_to_f16(f32p(v)[src + i]);
        }
      }
    }
  }

  ThreadPool pool_;
  const bool exact_;
  const bool kv_fp8_;
  const CpuKernels kernels_;
  FastMatmul fast_;
  std::vector<float> permuted_;  // the input of act-ordered weights (in_column_order)
  std::vector<float> norm_w_;  // a norm weight stored in another type, as f32
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads, bool exact, bool kv_fp8) {
  return std::make_unique<CpuBackend>(n_threads, exact, kv_fp8);
}

}  // namespace herd
