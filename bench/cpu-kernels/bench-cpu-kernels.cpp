// Speed of the CPU backend's dot-product kernels, at every level this machine supports: one
// token's activations against a ROWS x COLS weight matrix of each type (a matrix-vector product,
// decode's inner loop), single thread. Prints ns per row and GB/s of weights read, and checks
// each level's outputs against the scalar level's. Quantized types at levels with four-row
// kernels get a second line, LEVEL x4: the rows four at a time. Levels with panel kernels get
// LEVEL p1 and p8: the weights repacked into panels, against one token and against 8 tokens at
// once (times per token: how far a weight block's reuse across tokens cuts the cost). Float
// types at levels with multi-token kernels get LEVEL t1, t8 and t128 likewise (the rows in chunks
// of 16, as the backend passes them, against 1, 8 and 128 tokens).
//
// usage: bench-cpu-kernels [ROWS [COLS]]   (default 4096 x 4096; a few hundred rows stay in L2)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu-kernels.h"
#include "common/quant.h"

namespace {

using herd::CpuLevel;
using herd::DType;

// Random bytes with scales that are sane numbers (random ones may be NaN or huge), and no NaN
// E4M3 codes.
std::vector<uint8_t> random_matrix(DType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  const herd::DTypeBlock blk = herd::dtype_block(t);
  const int64_t n_blocks = rows * cols / blk.elems;
  std::vector<uint8_t> w(size_t(n_blocks) * blk.bytes);
  for (size_t i = 0; i < w.size(); i += 4) {
    const uint32_t r = rng();
    std::memcpy(w.data() + i, &r, std::min<size_t>(4, w.size() - i));
  }
  auto put_f16 = [](uint8_t* p, float v) {
    const uint16_t h = herd::f32_to_f16(v);
    std::memcpy(p, &h, 2);
  };
  std::normal_distribution<float> normal(0.f, 1.f);
  for (int64_t i = 0; i < n_blocks; ++i) {
    uint8_t* b = w.data() + size_t(i) * blk.bytes;
    switch (t) {
      case DType::q8_0: case DType::q4_0: put_f16(b, 0.01f); break;
      case DType::q4_1: case DType::q4_k: case DType::q5_k: put_f16(b, 0.01f), put_f16(b + 2, 0.01f); break;
      case DType::q6_k: put_f16(b + 208, 0.01f); break;
      case DType::fp8: {
        const float d = 0.01f;
        std::memcpy(b, &d, 4);
        for (int j = 4; j < 36; ++j)
          if ((b[j] & 0x7f) == 0x7f) b[j] = uint8_t(b[j] - 1);  // no NaN codes
        break;
      }
      case DType::int4: put_f16(b, 0.01f), b[2] = uint8_t(i % 17); break;
      case DType::f32: {
        const float v = normal(rng);
        std::memcpy(b, &v, 4);
        break;
      }
      case DType::f16: put_f16(b, normal(rng)); break;
      case DType::bf16: {
        const uint16_t h = herd::f32_to_bf16(normal(rng));
        std::memcpy(b, &h, 2);
        break;
      }
      default: break;
    }
  }
  return w;
}

// This thread's CPU time in seconds: the machine may be shared, and wall time would count the
// time slices other processes take.
double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Seconds per matrix-vector product (the best of several timed passes); `pass` writes the outputs.
template <class Pass>
double time_pass(Pass&& pass) {
  pass();  // warm-up
  double best = 1e9;
  const double start = cpu_seconds();
  for (int i = 0; i < 100 && cpu_seconds() - start < 0.3; ++i) {
    const double t0 = cpu_seconds();
    pass();
    best = std::min(best, cpu_seconds() - t0);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 4096, cols = argc > 2 ? std::atoll(argv[2]) : 4096;
  if (rows <= 0 || cols <= 0 || cols % 256 != 0) {
    std::fprintf(stderr, "usage: bench-cpu-kernels [ROWS [COLS]]; COLS a multiple of 256\n");
    return 2;
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(cols));
  for (float& v : x) v = normal(rng);
  const CpuLevel top = herd::detect_cpu_level();
  const herd::CpuKernels ref = herd::resolve_cpu_kernels(CpuLevel::scalar);
  std::vector<herd::Q8Block> a(static_cast<size_t>(cols / 32));
  ref.quantize(x.data(), cols, a.data());

  std::printf("%lld rows x %lld columns, one thread\n", (long long)rows, (long long)cols);
  std::printf("%-6s %-11s %10s %9s %9s  %s\n", "type", "level", "ns/row", "GB/s", "speed-up", "vs scalar");
  bool all_ok = true;
  for (DType t : {DType::q8_0, DType::q4_0, DType::q4_1, DType::q4_k, DType::q5_k, DType::q6_k, DType::fp8,
                  DType::int4, DType::f32, DType::f16, DType::bf16}) {
    const auto w = random_matrix(t, rows, cols, rng);
    const size_t row_bytes = herd::dtype_nbytes(t, cols);
    std::vector<float> want(static_cast<size_t>(rows)), got(static_cast<size_t>(rows));
    double scalar_s = 0;
    // One line: a pass's time and its outputs' agreement with scalar, relative to the largest
    // |output| (the test checks it properly).
    auto report = [&](const std::string& level, double s, const std::vector<float>& out) {
      double worst = 0, scale = 1e-30;
      for (int64_t r = 0; r < rows; ++r) {
        worst = std::max(worst, double(std::fabs(out[size_t(r)] - want[size_t(r)])));
        scale = std::max(scale, double(std::fabs(want[size_t(r)])));
      }
      const bool ok = worst <= 1e-4 * scale;
      all_ok &= ok;
      std::printf("%-6s %-11s %10.1f %9.2f %8.2fx  %s\n", std::string(herd::dtype_name(t)).c_str(), level.c_str(),
                  s / double(rows) * 1e9, double(row_bytes) * double(rows) / s / 1e9, scalar_s / s, ok ? "ok" : "MISMATCH");
    };
    for (int l = 0; l <= int(top); ++l) {
      const herd::CpuKernels k = herd::resolve_cpu_kernels(CpuLevel(l));
      std::vector<float>& out = l == 0 ? want : got;
      double s;
      if (t == DType::f32 || t == DType::f16 || t == DType::bf16) {
        const herd::DotF32Fn f = k.dot_f32[int(t)];
        s = time_pass([&] {
          for (int64_t r = 0; r < rows; ++r) out[size_t(r)] = f(cols, w.data() + size_t(r) * row_bytes, x.data());
        });
        if (const herd::DotF32TileFn tile = k.dot_f32_tile[int(t)]) {
          report(herd::cpu_level_name(CpuLevel(l)), s, out);
          // Chunks of kPanelRows rows, as the backend passes them, against 1, 8 and 128 tokens
          // (copies of x), per token: decode, batched decode and prefill.
          constexpr int64_t kBatch = 128;
          std::vector<float> xb;
          for (int64_t i = 0; i < kBatch; ++i) xb.insert(xb.end(), x.begin(), x.end());
          std::vector<float> outs(size_t(kBatch * rows));
          for (int64_t n_tok : {int64_t(1), int64_t(8), kBatch}) {
            const double st = time_pass([&] {
              for (int64_t r = 0; r < rows; r += herd::kPanelRows)
                tile(cols, w.data() + size_t(r) * row_bytes, row_bytes, int(std::min<int64_t>(herd::kPanelRows, rows - r)),
                     xb.data(), cols, n_tok, outs.data() + r, rows);
            });
            std::copy(outs.begin(), outs.begin() + rows, got.begin());
            report(std::string(herd::cpu_level_name(CpuLevel(l))) + " t" + std::to_string(n_tok), st / double(n_tok), got);
          }
          continue;
        }
      } else {
        const herd::DotQ8Fn f = k.dot_q8[int(t)];
        s = time_pass([&] {
          for (int64_t r = 0; r < rows; ++r) out[size_t(r)] = f(cols, w.data() + size_t(r) * row_bytes, a.data());
        });
      }
      if (l == 0) scalar_s = s;
      report(herd::cpu_level_name(CpuLevel(l)), s, out);
      if (const herd::DotQ8x4Fn f4 = k.dot_q8x4[int(t)]; f4 && rows % 4 == 0) {
        std::fill(got.begin(), got.end(), 0.f);
        s = time_pass([&] {
          for (int64_t r = 0; r < rows; r += 4) f4(cols, w.data() + size_t(r) * row_bytes, row_bytes, a.data(), &got[size_t(r)]);
        });
        report(std::string(herd::cpu_level_name(CpuLevel(l))) + " x4", s, got);
      }
      if (const herd::PanelKernel pk = k.panel[int(t)]; pk.gemm) {
        // The weights repacked into panels: one token, then kBatch tokens (the same activations
        // each) per pass, timed per token.
        constexpr int64_t kBatch = 8;
        const int64_t n_panels = (rows + herd::kPanelRows - 1) / herd::kPanelRows, nb = cols / 32;
        const size_t pb = pk.panel_bytes(cols);
        auto* panels = static_cast<uint8_t*>(std::aligned_alloc(64, size_t(n_panels) * pb));
        for (int64_t p = 0; p < n_panels; ++p)
          pk.pack(w.data() + size_t(p * herd::kPanelRows) * row_bytes, row_bytes,
                  int(std::min<int64_t>(herd::kPanelRows, rows - p * herd::kPanelRows)), cols, panels + size_t(p) * pb);
        std::vector<herd::Q8Block> batch(size_t(kBatch * nb));
        for (int64_t i = 0; i < kBatch; ++i) std::copy(a.begin(), a.end(), batch.begin() + i * nb);
        std::vector<float> outs(size_t(kBatch * rows));
        for (int64_t n_tok : {int64_t(1), kBatch}) {
          s = time_pass([&] {
            for (int64_t p = 0; p < n_panels; ++p)
              pk.gemm(cols, panels + size_t(p) * pb, batch.data(), n_tok, outs.data() + p * herd::kPanelRows, rows,
                      int(std::min<int64_t>(herd::kPanelRows, rows - p * herd::kPanelRows)));
          });
          std::copy(outs.begin(), outs.begin() + rows, got.begin());
          report(std::string(herd::cpu_level_name(CpuLevel(l))) + " p" + std::to_string(n_tok), s / double(n_tok), got);
        }
        std::free(panels);
      }
    }
  }
  return all_ok ? 0 : 1;
}
