// What the quantized-model golden tests share: a reference file of token ids and logits rows
// (F32 tensors "ids" and "logits", plus any others by name) and the distances between logits.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "model/safetensors.h"

namespace herd::golden {

struct RefLogits {
  std::vector<int32_t> ids;
  std::vector<float> logits;                          // [ids, n_vocab]
  std::map<std::string, std::vector<float>> others;  // the file's other F32 tensors
};

inline RefLogits load_ref_logits(const std::string& path) {
  RefLogits r;
  SafetensorsFile st(path);
  for (const auto& e : st.header().tensors) {
    const auto v = st.view(e);
    const auto* p = static_cast<const float*>(v.data);
    if (e.name == "ids") {
      for (int64_t i = 0; i < v.numel(); ++i) r.ids.push_back(int32_t(p[i]));  // exact: ids < 2^24
    } else {
      (e.name == "logits" ? r.logits : r.others[e.name]).assign(p, p + v.numel());
    }
  }
  return r;
}

inline float max_abs(const std::vector<float>& v) {
  float m = 0.f;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

inline float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0.f;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// The share of positions where both rows put the same token first.
inline double top1_agreement(const std::vector<float>& a, const std::vector<float>& b, size_t n_vocab) {
  size_t same = 0, rows = a.size() / n_vocab;
  for (size_t r = 0; r < rows; ++r) {
    const auto ra = a.begin() + long(r * n_vocab), rb = b.begin() + long(r * n_vocab);
    same += std::max_element(ra, ra + long(n_vocab)) - ra == std::max_element(rb, rb + long(n_vocab)) - rb;
  }
  return double(same) / double(rows);
}

}  // namespace herd::golden
