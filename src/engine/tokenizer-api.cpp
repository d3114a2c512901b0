// The public Tokenizer (include/herd/tokenizer.h) over src/tokenizer: herd::Error becomes a
// Status here.
#include "common/check.h"
#include "engine/guarded.h"
#include "herd/tokenizer.h"
#include "tokenizer/detokenize.h"
#include "tokenizer/model.h"

namespace herd {

struct Tokenizer::Impl {
  std::unique_ptr<tok::Model> model;
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

Status Tokenizer::load(const std::string& path, std::unique_ptr<Tokenizer>* out) {
  return guarded([&] {
    auto impl = std::make_unique<Impl>();
    impl->model = tok::load_model(path);
    out->reset(new Tokenizer(std::move(impl)));
  });
}

Status Tokenizer::encode(std::string_view text, bool allow_special, bool add_bos, std::vector<int32_t>* out) const {
  return guarded([&] {
    if (add_bos) {
      HERD_REQUIRE(impl_->model->bos_id() >= 0, "this tokenizer has no BOS token");
      out->push_back(impl_->model->bos_id());
    }
    impl_->model->encode(text, allow_special, *out);
  });
}

Status Tokenizer::decode(const std::vector<int32_t>& ids, std::string* out) const {
  return guarded([&] { out->append(tok::decode(*impl_->model, ids)); });
}

int32_t Tokenizer::n_vocab() const { return impl_->model->tokens().size(); }
int32_t Tokenizer::bos_id() const { return impl_->model->bos_id(); }
bool Tokenizer::adds_bos() const { return impl_->model->adds_bos(); }
const std::string& Tokenizer::chat_template() const { return impl_->model->chat_template(); }
int32_t Tokenizer::id_of(std::string_view special_text) const {
  return impl_->model->specials().find(special_text);
}

struct TokenStream::Impl {
  tok::StreamDecoder decoder;
};

TokenStream::TokenStream(const Tokenizer& tokenizer)
    : impl_(std::make_unique<Impl>(Impl{tok::StreamDecoder(*tokenizer.impl_->model)})) {}
TokenStream::~TokenStream() = default;
TokenStream::TokenStream(TokenStream&&) noexcept = default;
TokenStream& TokenStream::operator=(TokenStream&&) noexcept = default;

Status TokenStream::push(int32_t id, std::string* text) {
  return guarded([&] { text->append(impl_->decoder.push(id)); });
}

void TokenStream::flush(std::string* text) { text->append(impl_->decoder.flush()); }

}  // namespace herd
