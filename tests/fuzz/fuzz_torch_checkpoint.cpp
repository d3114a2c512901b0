// libFuzzer target for torch.save checkpoints: an input that begins as a ZIP archive ("PK") goes
// through the whole reader (ZIP directory, data.pkl, storage entries), any other is a data.pkl for
// the unpickler alone. Either gives tensors that lie inside the input, or a herd::Error; never a
// crash, a hang or an out-of-range view.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/check.h"
#include "model/torch-checkpoint.h"
#include "model/torch-pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
      for (const auto& t : herd::read_torch_checkpoint(data, size, "fuzz")) {
        const auto* p = static_cast<const uint8_t*>(t.view.data);
        if (p < data || t.view.nbytes() > size_t(data + size - p)) std::abort();
      }
    } else {
      const herd::PickledStateDict sd = herd::parse_state_dict_pickle(data, size, "fuzz");
      for (const auto& t : sd.tensors) {
        if (t.storage >= sd.storages.size()) std::abort();
        const uint64_t numel = uint64_t(herd::shape_numel(t.shape));
        if (t.offset > sd.storages[t.storage].numel || numel > sd.storages[t.storage].numel - t.offset) std::abort();
      }
    }
  } catch (const herd::Error&) {
  }
  return 0;
}
