// ids -> bytes. Special tokens are written as their text. The bytes are exactly what was
// encoded, valid UTF-8 or not (a token can hold part of a character: 1,352 of Llama 3's do).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "tokenizer/model.h"

namespace herd::tok {

// Throws an invalid-input Error on an id outside the vocabulary.
std::string decode(const Model& model, std::span<const int32_t> ids);

// Streaming: push() returns the text that is safe to show now, holding back the start of a
// multi-byte character until its last byte arrives; flush() returns whatever is held at the
// end. The pieces concatenate to decode(ids) exactly.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Model& model) : model_(&model) {}
  std::string push(int32_t id);
  std::string flush();

 private:
  const Model* model_;
  std::string held_;  // an unfinished UTF-8 sequence, at most 3 bytes
  bool at_start_ = true;
};

}  // namespace herd::tok
