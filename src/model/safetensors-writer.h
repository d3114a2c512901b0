// A safetensors checkpoint written one tensor at a time: every tensor's name, type and shape are
// planned first (so each file's header can come first), then the bytes are streamed in plan order.
// Like transformers' save_pretrained, files are cut at 5 GB: one model.safetensors when everything
// fits, else model-0000K-of-0000N.safetensors and a model.safetensors.index.json.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "common/tensor.h"

namespace herd {

class SafetensorsWriter {
 public:
  explicit SafetensorsWriter(std::string dir, uint64_t max_file_bytes = 5'000'000'000ull)
      : dir_(std::move(dir)), max_file_bytes_(max_file_bytes) {}
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Before the first write: a tensor of plain type t (F32, F16, BF16, I32, F8_E4M3).
  void plan(const std::string& name, DType t, const Shape& shape);
  // The next planned tensor's bytes, exactly its size.
  void write(const void* data, size_t n);
  // Closes the last file, writes the index when there are several; checks everything was written.
  void finish();

 private:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t nbytes = 0;
    size_t file = 0;
    uint64_t offset = 0;  // in its file's data section
  };
  std::string file_name(size_t file) const;
  void open_file(size_t file);
  void close_file();

  std::string dir_;
  uint64_t max_file_bytes_;
  std::vector<Entry> entries_;
  std::vector<uint64_t> file_bytes_;  // data bytes per file
  bool planned_ = false;
  size_t next_ = 0;
  std::FILE* f_ = nullptr;
  std::string path_;
};

}  // namespace herd
