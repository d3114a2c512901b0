#include "tokenizer/model.h"

namespace herd::tok {

void Model::encode(std::string_view text, bool allow_special, std::vector<int32_t>& out) const {
  if (!allow_special || specials_.empty()) {
    encode_ordinary(text, out);
    return;
  }
  size_t pos = 0;
  for (SpecialMatch m; (m = specials_.next_in(text, pos)).id >= 0; pos = m.pos + m.len) {
    encode_ordinary(text.substr(pos, m.pos - pos), out);
    out.push_back(m.id);
  }
  encode_ordinary(text.substr(pos), out);
}

}  // namespace herd::tok
