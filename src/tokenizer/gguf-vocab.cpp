#include "tokenizer/gguf-vocab.h"

#include <unordered_map>

#include "common/check.h"
#include "tokenizer/bpe-model.h"
#include "tokenizer/byte-level.h"
#include "tokenizer/regex-split.h"

namespace herd::tok {
namespace {

// llama.cpp's llama_token_type.
enum TokenType : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

Pretokenizer pretokenizer_named(std::string_view pre, const std::string& source) {
  // "smaug-bpe" is what llama.cpp's converter calls a Llama 3 vocabulary whose tokenizer.json adds no
  // BOS: the same pattern.
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3" || pre == "smaug-bpe") return {kLlama3Pattern, false};
  if (pre == "smollm") return {std::string(kGpt2Pattern), true};
  if (pre == "default" || pre == "gpt-2" || pre == "gpt2") return {std::string(kGpt2Pattern), false};
  fail_input(source, ": key \"tokenizer.ggml.pre\" names the pre-tokenizer \"", pre,
             "\", which herd does not know (it knows llama-bpe, smaug-bpe, smollm and default)");
}

}  // namespace

std::unique_ptr<Model> load_gguf_vocab(const GgufFile& f) {
  const std::string& src = f.source();
  const auto model = f.get_string("tokenizer.ggml.model");
  HERD_REQUIRE(model, src, ": missing key \"tokenizer.ggml.model\" (the file carries no tokenizer)");
  HERD_REQUIRE(*model == "gpt2", src, ": key \"tokenizer.ggml.model\" is \"", *model,
               "\"; herd reads byte-level BPE (\"gpt2\") vocabularies from GGUF files");
  const auto texts = f.get_strings("tokenizer.ggml.tokens");
  HERD_REQUIRE(texts && !texts->empty(), src, ": missing key \"tokenizer.ggml.tokens\"");
  const size_t n = texts->size();
  const auto types = f.get_ints("tokenizer.ggml.token_type").value_or(std::vector<int64_t>(n, kNormal));
  HERD_REQUIRE(types.size() == n, src, ": key \"tokenizer.ggml.token_type\" has ", types.size(), " entries for ", n,
               " tokens");
  const auto merges = f.get_strings("tokenizer.ggml.merges");
  HERD_REQUIRE(merges, src, ": missing key \"tokenizer.ggml.merges\"");
  // An absent pre-tokenizer is GPT-2's, as in llama.cpp (which warns that quality suffers).
  const Pretokenizer pre = pretokenizer_named(f.get_string("tokenizer.ggml.pre").value_or("default"), src);

  TokenTable tokens;
  std::vector<int32_t> special_ids;
  std::unordered_map<std::string, int32_t> ids;  // byte-level spelling -> id, for the merge check
  for (size_t id = 0; id < n; ++id) {
    const std::string_view text = (*texts)[id];
    if (types[id] == kControl || types[id] == kUserDefined) {
      tokens.push_back(text);  // special tokens hold their text, not a byte-level spelling
      special_ids.push_back(int32_t(id));
      continue;
    }
    HERD_REQUIRE(types[id] >= kNormal && types[id] <= kByte, src, ": key \"tokenizer.ggml.token_type\": token ", id,
                 " has unknown type ", types[id]);
    const auto bytes = byte_level_to_bytes(text);
    HERD_REQUIRE(bytes, src, ": key \"tokenizer.ggml.tokens\": token ", id, " \"", text,
                 "\" is not in the byte-level alphabet");
    tokens.push_back(*bytes);
    ids.emplace(std::string(text), int32_t(id));
  }
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(merges->size());
  for (std::string_view m : *merges) pairs.push_back(split_merge(m, src));
  check_merge_order(pairs, ids, src);

  const int64_t bos = f.get_int("tokenizer.ggml.bos_token_id").value_or(-1);
  HERD_REQUIRE(bos >= -1 && bos < int64_t(n), src, ": key \"tokenizer.ggml.bos_token_id\" is ", bos,
               ", outside the vocabulary of ", n);
  auto out = std::make_unique<BpeModel>(std::move(tokens), special_ids, pre, int32_t(bos), src);
  // Llama 3's files say true; SmolLM2's say false (its BOS id is <|im_start|>).
  out->set_adds_bos(f.get_bool("tokenizer.ggml.add_bos_token").value_or(bos >= 0));
  out->set_chat_template(std::string(f.get_string("tokenizer.chat_template").value_or("")));
  return out;
}

}  // namespace herd::tok
