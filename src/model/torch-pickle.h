// A restricted unpickler for the data.pkl of a torch.save checkpoint holding a state dict: a
// dict of names to tensors whose bytes live in the archive's storage entries. It interprets only the
// opcodes torch.save writes for one (protocol 2, and the few protocol 4 adds) and knows a fixed list
// of globals (OrderedDict, tensor and parameter rebuilding, the float storage types); it never
// imports or calls anything, so a file that asks for any other global is refused, not run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/tensor.h"

namespace herd {

// One storage (the bytes of one or more tensors), named by the archive entry data/<key>.
struct PickledStorage {
  std::string key;
  DType dtype = DType::f32;
  uint64_t numel = 0;  // elements of dtype
};

struct PickledTensor {
  std::string name;
  size_t storage = 0;   // index into PickledStateDict::storages
  Shape shape;          // row-major and contiguous (checked)
  uint64_t offset = 0;  // elements of the storage before the tensor's first one
};

struct PickledStateDict {
  std::vector<PickledStorage> storages;
  std::vector<PickledTensor> tensors;  // in the file's order; each lies inside its storage (checked)
};

// Throws an invalid-input Error "<source>: <reason>" for anything that is not a flat state dict of
// contiguous float32/float16/bfloat16 tensors as torch.save pickles it, or that passes the
// interpreter's limits (opcodes, stack, nesting, memo, string lengths).
PickledStateDict parse_state_dict_pickle(const uint8_t* data, size_t size, const std::string& source);

}  // namespace herd
