// A read-only memory-mapped file. Weights are mapped, never read into buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace herd {

class MappedFile {
 public:
  // Throws an invalid-input Error naming the path when it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Anonymous memory of zero pages: only the pages written take memory. How a process that needs a
// slice of a tensor assembled from several files keeps just that slice resident.
class ZeroPages {
 public:
  explicit ZeroPages(size_t size);  // internal Error when the address space is exhausted
  ~ZeroPages();
  ZeroPages(const ZeroPages&) = delete;
  ZeroPages& operator=(const ZeroPages&) = delete;

  uint8_t* data() const { return data_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace herd
