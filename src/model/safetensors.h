// The safetensors format: an 8-byte little-endian header length, a JSON header, then the data.
// Parsing validates everything a hostile file could get wrong before any byte is used.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/mmap.h"
#include "common/tensor.h"

namespace herd {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the start of the data section
};

struct SafetensorsHeader {
  uint64_t data_start = 0;  // 8 + header length
  std::vector<SafetensorsEntry> tensors;
};

// Throws an invalid-input Error "<source>: <reason>" on any malformed or inconsistent header:
// length beyond the file, invalid JSON, unknown dtype, bad shape, offsets out of range or
// overlapping, or a byte length that disagrees with shape x dtype.
SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& source);

// A mapped, validated file whose tensors are views into the mapping.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const SafetensorsHeader& header() const { return header_; }
  TensorView view(const SafetensorsEntry& e) const;
  const std::string& path() const { return file_.path(); }

 private:
  MappedFile file_;
  SafetensorsHeader header_;
};

struct NamedTensor {
  std::string name;
  TensorView view;
};

// Writes a single-file safetensors (header padded to 8 bytes, tensors in the given order).
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors);

}  // namespace herd
