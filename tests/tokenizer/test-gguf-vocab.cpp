// Meta's Llama 3 tokenizer as llama.cpp's converter writes it into a GGUF file
// (tests/reference/make_gguf_vocab.py): the "llama-bpe" vocabulary must encode every published
// vector exactly as tokenizer.model does, keep its special tokens and BOS, and carry the chat
// template that selects the Llama 3.1 prompt format.
#include <nlohmann/json.hpp>

#include "herd/chat.h"
#include "tokenizer-fixture.h"

namespace herd_test {
namespace {

const herd::Tokenizer& gguf_vocab() {
  static const std::unique_ptr<herd::Tokenizer> tok = [] {
    std::unique_ptr<herd::Tokenizer> t;
    const herd::Status s = herd::Tokenizer::load(std::string(HERD_TEST_DATA) + "/gguf/llama3-vocab.gguf", &t);
    if (!s) throw std::runtime_error(s.message());
    return t;
  }();
  return *tok;
}

TEST(GgufVocab, EncodesEveryVectorLikeTheTokenizerModel) {
  for (const auto& set : {load_vectors(), load_llamacpp_vectors()})
    for (const Vector& v : set) {
      EXPECT_EQ(encode(gguf_vocab(), v.text), v.ids) << nlohmann::json(v.text).dump();
      EXPECT_EQ(decode(gguf_vocab(), v.ids), v.text);
    }
}

TEST(GgufVocab, KeepsSpecialTokensBosAndTheChatFormat) {
  const herd::Tokenizer& t = gguf_vocab();
  EXPECT_EQ(t.n_vocab(), 128256);
  EXPECT_EQ(t.bos_id(), 128000);
  EXPECT_TRUE(t.adds_bos());
  for (const char* special : {"<|begin_of_text|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>",
                              "<|reserved_special_token_3|>", "<|reserved_special_token_247|>"})
    EXPECT_EQ(t.id_of(special), llama3().id_of(special)) << special;
  EXPECT_EQ(encode(t, "<|eot_id|>hi", true, true), encode(llama3(), "<|eot_id|>hi", true, true));
  EXPECT_EQ(herd::prompt_format(t), herd::PromptFormat::llama3);
  EXPECT_NE(t.chat_template().find("<|start_header_id|>"), std::string::npos);
}

}  // namespace
}  // namespace herd_test
