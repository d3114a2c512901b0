#include "tokenizer/spm-model.h"

#include "common/check.h"

#ifdef HERD_WITH_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace herd::tok {

bool looks_like_sentencepiece(std::string_view content) {
  size_t i = 1;
  if (content.empty() || content[0] != 0x0A) return false;
  while (i < content.size() && i < 6 && (static_cast<uint8_t>(content[i]) & 0x80)) ++i;
  return i + 1 < content.size() && content[i + 1] == 0x0A;
}

#ifdef HERD_WITH_SENTENCEPIECE
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581, SentencePiece's space

std::string piece_bytes(const sentencepiece::SentencePieceProcessor& sp, int id) {
  const std::string& piece = sp.IdToPiece(id);
  if (sp.IsByte(id)) return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
  if (sp.IsControl(id) || sp.IsUnknown(id)) return piece;
  std::string out;
  for (size_t i = 0; i < piece.size();) {
    if (piece.compare(i, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
      out += ' ';
      i += kSpaceSymbol.size();
    } else {
      out += piece[i++];
    }
  }
  return out;
}

TokenTable table_of(const sentencepiece::SentencePieceProcessor& sp) {
  TokenTable t;
  for (int id = 0; id < sp.GetPieceSize(); ++id) t.push_back(piece_bytes(sp, id));
  return t;
}

class SpmModel final : public Model {
 public:
  explicit SpmModel(std::unique_ptr<sentencepiece::SentencePieceProcessor> sp)
      : Model(table_of(*sp)), sp_(std::move(sp)) {
    for (int id = 0; id < sp_->GetPieceSize(); ++id)
      if (sp_->IsControl(id) || sp_->IsUnknown(id)) specials_.add(sp_->IdToPiece(id), id);
    bos_id_ = sp_->bos_id();
    const std::vector<std::string> pieces = sp_->EncodeAsPieces("a");
    strips_first_space_ = !pieces.empty() && pieces[0].starts_with(kSpaceSymbol);
  }

 private:
  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const override {
    if (text.empty()) return;
    std::vector<int> ids;
    const auto status = sp_->Encode(text, &ids);
    HERD_REQUIRE(status.ok(), "SentencePiece could not encode the text: ", status.ToString());
    out.insert(out.end(), ids.begin(), ids.end());
  }

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace

std::unique_ptr<Model> load_sentencepiece(std::string_view content, const std::string& source) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->LoadFromSerializedProto(content);
  HERD_REQUIRE(status.ok(), source, ": not a valid SentencePiece model: ", status.ToString());
  return std::make_unique<SpmModel>(std::move(sp));
}

#else

std::unique_ptr<Model> load_sentencepiece(std::string_view, const std::string& source) {
  fail_input(source, ": a SentencePiece model, but herd was built without libsentencepiece");
}

#endif

}  // namespace herd::tok
