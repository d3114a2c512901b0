// Every published vector must match exactly: ids from independent tokenizers (HF tokenizers,
// tiktoken and two JavaScript ones; llama.cpp's suite; Meta's own unit tests).
#include <nlohmann/json.hpp>

#include "tokenizer-fixture.h"

namespace herd_test {
namespace {

TEST(TokenizerVectors, SharedVectorsEncodeExactly) {
  const auto vectors = load_vectors();
  ASSERT_EQ(vectors.size(), 228u);
  int n_failed = 0;
  for (const Vector& v : vectors) {
    const auto ids = encode(llama3(), v.text);
    EXPECT_EQ(ids, v.ids) << "text: " << nlohmann::json(v.text).dump();
    n_failed += ids != v.ids;
  }
  EXPECT_EQ(n_failed, 0);
}

TEST(TokenizerVectors, SharedVectorsDecodeExactly) {
  for (const Vector& v : load_vectors()) EXPECT_EQ(decode(llama3(), v.ids), v.text);
}

TEST(TokenizerVectors, LlamaCppVectorsEncodeExactly) {
  const auto vectors = load_llamacpp_vectors();
  ASSERT_EQ(vectors.size(), 46u);
  for (const Vector& v : vectors) {
    EXPECT_EQ(encode(llama3(), v.text), v.ids) << "text: " << nlohmann::json(v.text).dump();
    EXPECT_EQ(decode(llama3(), v.ids), v.text);
  }
}

TEST(TokenizerVectors, MetaEncodeCasesEncodeExactly) {
  const auto vectors = load_vectors("tokenizer_encode_cases.jsonl");
  ASSERT_EQ(vectors.size(), 48u);
  for (const Vector& v : vectors) EXPECT_EQ(encode(llama3(), v.text), v.ids) << nlohmann::json(v.text).dump();
}

// Meta's test_tokenizer.py: encode(bos=True, eos=True) and decode with special tokens.
TEST(TokenizerVectors, MetaOfficialTests) {
  const auto j = nlohmann::json::parse(read_file(data_path("tokenizer_official.json")));
  const int32_t eos = llama3().id_of("<|end_of_text|>");
  for (const auto& c : j.at("encode")) {
    auto ids = encode(llama3(), c.at("text").get<std::string>(), false, c.at("bos").get<bool>());
    if (c.at("eos").get<bool>()) ids.push_back(eos);
    EXPECT_EQ(ids, c.at("ids").get<std::vector<int32_t>>());
  }
  for (const auto& c : j.at("decode"))
    EXPECT_EQ(decode(llama3(), c.at("ids").get<std::vector<int32_t>>()), c.at("text").get<std::string>());
}

}  // namespace
}  // namespace herd_test
