// A non-owning view of a stored tensor: element type, shape (row-major, outermost first), bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/dtype.h"

namespace herd {

using Shape = std::vector<int64_t>;

inline int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s);  // "[4096, 128256]"

struct TensorView {
  DType dtype = DType::f32;
  Shape shape;
  const void* data = nullptr;
  // A weight whose stored columns are in another order than its input's (GPTQ's act order): stored
  // column j multiplies input column col_perm[j]. Null: the same order (every other weight).
  const int32_t* col_perm = nullptr;

  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return dtype_nbytes(dtype, numel()); }
};

}  // namespace herd
