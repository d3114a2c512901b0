// Writes GGUF v3 files (little-endian), the container GgufFile reads: metadata key/values in the
// order they are added, tensor infos, then each tensor's data aligned to general.alignment (32),
// streamed one tensor at a time so that a model is never whole in memory.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "common/tensor.h"

namespace herd {

class GgufWriter {
 public:
  GgufWriter() = default;
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Metadata, before begin(). Each key once.
  void add_string(const std::string& key, const std::string& value);
  void add_u32(const std::string& key, uint32_t value);
  void add_i32(const std::string& key, int32_t value);
  void add_f32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_strings(const std::string& key, const std::vector<std::string>& values);
  void add_i32s(const std::string& key, const std::vector<int32_t>& values);

  // A tensor of type t (F32, F16, BF16 or a GGML block type) and shape (outermost first, as
  // GgufFile reports it), before begin(); its data comes later through write_tensor, in this order.
  void add_tensor(const std::string& name, DType t, const Shape& shape);

  // Creates path (which must not exist) and writes the header, metadata and tensor infos.
  void begin(const std::string& path);
  // The next tensor's bytes, exactly its size; several calls may make up one tensor, the last
  // one with `last` true.
  void write_tensor(const void* data, size_t n, bool last = true);
  // Flushes and closes the file; checks that every tensor was written.
  void finish();

 private:
  struct Tensor {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t offset = 0, nbytes = 0;
  };
  void key(const std::string& k, uint32_t type);
  void put(const void* p, size_t n);
  void pad_to_alignment();

  std::vector<uint8_t> kv_;  // serialized key/values
  uint64_t n_kv_ = 0;
  std::vector<std::string> keys_;
  std::vector<Tensor> tensors_;
  std::FILE* f_ = nullptr;
  std::string path_;
  uint64_t pos_ = 0;         // bytes written to the file
  uint64_t data_start_ = 0;  // where the data section starts
  size_t next_ = 0;          // the tensor being written
  uint64_t written_ = 0;     // its bytes so far
};

}  // namespace herd
