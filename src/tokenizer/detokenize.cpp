#include "tokenizer/detokenize.h"

#include <utility>

#include "common/check.h"
#include "tokenizer/unicode.h"

namespace herd::tok {
namespace {

// Appends the bytes of `id`; `at_start` says nothing ordinary has been written yet.
void append_token(const Model& model, int32_t id, bool& at_start, std::string& out) {
  HERD_REQUIRE(model.tokens().contains(id), "token id ", id, " is outside the vocabulary [0, ",
               model.tokens().size(), ")");
  std::string_view bytes = model.tokens().bytes(id);
  if (model.specials().is_special(id)) {
    out.append(bytes);
    return;
  }
  if (at_start && model.strips_first_space() && !bytes.empty() && bytes[0] == ' ') bytes.remove_prefix(1);
  at_start = false;
  out.append(bytes);
}

}  // namespace

std::string decode(const Model& model, std::span<const int32_t> ids) {
  std::string out;
  bool at_start = true;
  for (int32_t id : ids) append_token(model, id, at_start, out);
  return out;
}

std::string StreamDecoder::push(int32_t id) {
  append_token(*model_, id, at_start_, held_);
  const size_t n = utf8_emittable_prefix(reinterpret_cast<const uint8_t*>(held_.data()), held_.size());
  std::string out = held_.substr(0, n);
  held_.erase(0, n);
  return out;
}

std::string StreamDecoder::flush() {
  at_start_ = true;
  return std::exchange(held_, {});
}

}  // namespace herd::tok
