// A state dict written by torch.save (PyTorch 1.6 and later): a ZIP archive of stored entries,
// <prefix>/data.pkl (the pickled dict, read by the restricted unpickler in torch-pickle.h),
// <prefix>/data/<key> (one entry per storage) and <prefix>/byteorder. Its tensors are views into
// the memory-mapped file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/mmap.h"
#include "model/safetensors.h"

namespace herd {

// The tensors of the archive in `data` (views into it), in the pickle's order. Throws an
// invalid-input Error "<source>: <reason>" for anything torch.save would not have written for a
// flat state dict of float32/float16/bfloat16 tensors: see zip-archive.h and torch-pickle.h; also
// a storage entry that is missing, of the wrong size, or not aligned to its elements, and a
// big-endian byte order.
std::vector<NamedTensor> read_torch_checkpoint(const uint8_t* data, size_t size, const std::string& source);

// A mapped checkpoint file.
class TorchCheckpoint {
 public:
  explicit TorchCheckpoint(const std::string& path);
  const std::vector<NamedTensor>& tensors() const { return tensors_; }
  const std::string& path() const { return file_.path(); }

 private:
  MappedFile file_;
  std::vector<NamedTensor> tensors_;
};

}  // namespace herd
