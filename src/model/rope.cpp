#include "model/rope.h"

#include <cmath>
#include <numbers>

namespace herd {

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int64_t half = c.head_dim / 2;
  std::vector<float> out(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // Evaluated in double and rounded once: within an ulp of the f32 references.
    double f = 1.0 / std::pow(double(c.rope_theta), double(2 * i) / double(c.head_dim));
    if (c.rope_scaling) {
      const RopeScaling& s = *c.rope_scaling;
      const double old_ctx = double(s.original_max_position);
      const double low_wavelen = old_ctx / s.low_freq_factor;
      const double high_wavelen = old_ctx / s.high_freq_factor;
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > low_wavelen) {
        f /= s.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }
    }
    if (!c.rope_freq_factors.empty()) f /= double(c.rope_freq_factors[size_t(i)]);
    out[size_t(i)] = float(f);
  }
  return out;
}

}  // namespace herd
