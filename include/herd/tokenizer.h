// Text <-> token ids: Llama 3's byte-level BPE (Meta's tokenizer.model or a Hugging Face
// tokenizer.json) and SentencePiece models, behind one interface. docs/tokenizer.md has the
// details. A loaded Tokenizer is immutable; every const method is safe to call from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "herd/export.h"
#include "herd/status.h"

namespace herd {

class HERD_API Tokenizer {
 public:
  // path: Meta's tiktoken tokenizer.model, a tokenizer.json, a SentencePiece .model, a GGUF
  // model (its embedded vocabulary), or a directory holding tokenizer.json or tokenizer.model.
  // The format is read from the content,
  // never the name. On failure *out is untouched and the Status names the file and the reason.
  static Status load(const std::string& path, std::unique_ptr<Tokenizer>* out);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Appends the ids of `text` (any bytes) to *out.
  // allow_special: special-token text (<|eot_id|>) becomes its special id; when false it is
  //   encoded as ordinary text, so user text can never forge a control token.
  // add_bos: put bos_id() first; invalid input when the vocabulary has no BOS.
  Status encode(std::string_view text, bool allow_special, bool add_bos, std::vector<int32_t>* out) const;

  // Appends the bytes of ids to *out; special tokens are written as their text. The bytes
  // are exactly what was encoded (decode(encode(x)) == x). Invalid input on an unknown id.
  Status decode(const std::vector<int32_t>& ids, std::string* out) const;

  int32_t n_vocab() const;  // 128256 for Llama 3
  int32_t bos_id() const;   // -1 when there is none
  // Whether the model's text starts with BOS (true for Llama 3; a GGUF file can say otherwise
  // in tokenizer.ggml.add_bos_token, as SmolLM2's does). The engine follows it for text requests.
  bool adds_bos() const;
  // The model's chat template as its files give it (Jinja text), "" when there is none.
  const std::string& chat_template() const;
  // The id of a special token given its text ("<|eot_id|>"), or -1.
  int32_t id_of(std::string_view special_text) const;

 private:
  friend class TokenStream;
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Streaming detokenizer: feed generated ids one at a time and show the text as it comes.
// It never returns part of a multi-byte UTF-8 character: such bytes wait for the rest
// (a Llama 3 token can hold half a character). Concatenated, push() and flush() give
// exactly Tokenizer::decode of the same ids. The Tokenizer must outlive the stream.
class HERD_API TokenStream {
 public:
  explicit TokenStream(const Tokenizer& tokenizer);
  ~TokenStream();
  TokenStream(TokenStream&&) noexcept;
  TokenStream& operator=(TokenStream&&) noexcept;

  // Appends the text that is complete now to *text. Invalid input on an unknown id.
  Status push(int32_t id, std::string* text);
  // Appends what is still held back (an unfinished character at the end); the stream then
  // starts afresh.
  void flush(std::string* text);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace herd
