#include "common/mmap.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/check.h"
#include "common/read-file.h"

namespace herd {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  const RegularFile file(path, kNoSizeLimit, "a mapped file");
  size_ = size_t(file.size());
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, file.fd(), 0);
    HERD_REQUIRE(p != MAP_FAILED, path, ": cannot map: ", std::strerror(errno));
    data_ = static_cast<const uint8_t*>(p);
  }
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

ZeroPages::ZeroPages(size_t size) : size_(std::max<size_t>(size, 1)) {
  void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  HERD_CHECK(p != MAP_FAILED, "cannot reserve ", size_, " bytes of address space: ", std::strerror(errno));
  data_ = static_cast<uint8_t*>(p);
}

ZeroPages::~ZeroPages() { ::munmap(data_, size_); }

}  // namespace herd
