// The tokenizer behind the public API: one vocabulary (token id -> bytes, special tokens, BOS)
// and one way to encode ordinary text. Byte-level BPE (bpe-model.h) and SentencePiece
// (spm-model.h) implement it; decoding is shared (decode.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/special-tokens.h"
#include "tokenizer/token-table.h"

namespace herd::tok {

class Model {
 public:
  virtual ~Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Appends the ids of `text`. With allow_special, special-token text becomes special ids;
  // without, it is encoded as ordinary text.
  void encode(std::string_view text, bool allow_special, std::vector<int32_t>& out) const;

  const TokenTable& tokens() const { return tokens_; }
  const SpecialTokens& specials() const { return specials_; }
  int32_t bos_id() const { return bos_id_; }  // -1 when the vocabulary has none
  // SentencePiece drops the space it added in front of the text when it decodes.
  bool strips_first_space() const { return strips_first_space_; }
  // Whether text starts with BOS when the caller does not say (true whenever there is a BOS,
  // unless the file says otherwise, as GGUF's tokenizer.ggml.add_bos_token can).
  bool adds_bos() const { return adds_bos_.value_or(bos_id_ >= 0); }
  // The model's chat template as the file gives it (Jinja text), "" when it has none.
  const std::string& chat_template() const { return chat_template_; }
  void set_adds_bos(bool adds_bos) { adds_bos_ = adds_bos; }
  // A BOS the file names but does not add (tokenizer_config.json's bos_token when tokenizer.json's
  // post-processor adds none): text starts with it only when the caller asks.
  void set_unadded_bos(int32_t id) {
    bos_id_ = id;
    adds_bos_ = false;
  }
  void set_chat_template(std::string chat_template) { chat_template_ = std::move(chat_template); }

 protected:
  explicit Model(TokenTable tokens) : tokens_(std::move(tokens)) {}
  virtual void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const = 0;

  TokenTable tokens_;
  SpecialTokens specials_;
  int32_t bos_id_ = -1;
  bool strips_first_space_ = false;
  std::optional<bool> adds_bos_;
  std::string chat_template_;
};

// Loads a tokenizer file, recognised by its content: tiktoken ranks (Meta's tokenizer.model),
// Hugging Face tokenizer.json (with the chat template and BOS token of the files beside it),
// the vocabulary inside a GGUF model, or a SentencePiece model. A directory is searched for
// tokenizer.json, then tokenizer.model. Throws an invalid-input Error naming the file.
std::unique_ptr<Model> load_model(const std::string& path);

}  // namespace herd::tok
