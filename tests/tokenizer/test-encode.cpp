// Encoding behaviour beyond the vectors: special tokens, BOS, long runs, the merge algorithm.
#include <chrono>
#include <nlohmann/json.hpp>

#include "tokenizer-fixture.h"

namespace herd_test {
namespace {

using Ids = std::vector<int32_t>;

TEST(TokenizerEncode, VocabularyShape) {
  EXPECT_EQ(llama3().n_vocab(), 128256);
  EXPECT_EQ(llama3().bos_id(), 128000);
}

// Every special token's name and id, as Llama 3.1's tokenizer.json has them.
TEST(TokenizerEncode, SpecialTokenNamesMatchLlama31) {
  const auto j = nlohmann::json::parse(read_file(data_path("special_tokens.json")));
  const auto& table = j.at("tables").at("hf_llama3.1_and_3.2_tokenizer_json");
  ASSERT_EQ(table.size(), 256u);
  for (const auto& [id, name] : table.items()) {
    EXPECT_EQ(llama3().id_of(name.get<std::string>()), std::stoi(id)) << name;
    EXPECT_EQ(decode(llama3(), {std::stoi(id)}), name.get<std::string>());
  }
  EXPECT_EQ(llama3().id_of("<|eot_id|>"), 128009);
  EXPECT_EQ(llama3().id_of("<|eot_id"), -1);
  EXPECT_EQ(llama3().id_of("hello"), -1);
}

TEST(TokenizerEncode, SpecialTokensOnlyWhenAllowed) {
  // docs/llama31.md, "Encoding and decoding": a literal <|eot_id|> in user text is plain text.
  EXPECT_EQ(encode(llama3(), "<|eot_id|>"), (Ids{27, 91, 68, 354, 851, 91, 29}));
  EXPECT_EQ(encode(llama3(), "<|eot_id|>", true), (Ids{128009}));
  // Meta's encode_message vector: header ids around "user", then "\n\n" and the content.
  EXPECT_EQ(encode(llama3(), "<|start_header_id|>user<|end_header_id|>\n\nThis is a test sentence.<|eot_id|>", true),
            (Ids{128006, 882, 128007, 271, 2028, 374, 264, 1296, 11914, 13, 128009}));
  EXPECT_EQ(encode(llama3(), "<|python_tag|><|eom_id|><|reserved_special_token_247|>", true),
            (Ids{128010, 128008, 128255}));
  // Near misses stay text.
  EXPECT_EQ(encode(llama3(), "<|eot_id|", true), encode(llama3(), "<|eot_id|"));
  EXPECT_EQ(encode(llama3(), "<<|eot_id|>>", true), (Ids{27, 128009, 29}));
}

TEST(TokenizerEncode, BosIsExplicit) {
  EXPECT_EQ(encode(llama3(), "Hello world"), (Ids{9906, 1917}));
  EXPECT_EQ(encode(llama3(), "Hello world", false, true), (Ids{128000, 9906, 1917}));
  EXPECT_EQ(encode(llama3(), "", false, true), (Ids{128000}));
  EXPECT_EQ(encode(llama3(), "<|begin_of_text|>Hi", true, true), (Ids{128000, 128000, 13347}));
}

// ` Việt` is one token: the whole-piece lookup comes before merging (llama.cpp PR #7193).
TEST(TokenizerEncode, WholePieceFirst) { EXPECT_EQ(encode(llama3(), " Việt"), (Ids{101798})); }

// One megabyte of one character is one piece for letters (and a long one for spaces): the
// merge loop must stay O(n log n). Round trip proves nothing was lost.
TEST(TokenizerEncode, NoQuadraticBlowUpOnLongRuns) {
  for (const std::string unit : {"a", " ", "1", "\n", "!", "é", "ก", "😀", "ab"}) {
    std::string text;
    while (text.size() < (1u << 20)) text += unit;
    const auto start = std::chrono::steady_clock::now();
    const Ids ids = encode(llama3(), text);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 3.0) << "unit " << unit;
    EXPECT_LT(ids.size(), text.size());
    EXPECT_EQ(decode(llama3(), ids), text) << "unit " << unit;
  }
}

// The merge order on long pieces is checked against the vectors' runs of up to 1,200
// characters; here also against a direct transcription of tiktoken's loop (quadratic, so
// on shorter runs): repeatedly merge the lowest-ranked adjacent pair, leftmost first.
TEST(TokenizerEncode, HeapMergeEqualsTiktokenLoop) {
  // Ranks as the tokenizer sees them: the id of a one-token string.
  auto rank_of = [](const std::string& s) {
    const Ids ids = encode(llama3(), s);
    return ids.size() == 1 && decode(llama3(), ids) == s ? ids[0] : -1;
  };
  for (const std::string text : {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                  "abababababababababababcabababababab", "zzzzqqqqxxxxzzzzqqqq",
                                  "supercalifragilisticexpialidociousness"}) {
    std::vector<std::string> parts;
    for (char c : text) parts.push_back(std::string(1, c));
    for (;;) {
      int best = -1, best_rank = -1;
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        const int r = rank_of(parts[i] + parts[i + 1]);
        if (r >= 0 && (best_rank < 0 || r < best_rank)) best = int(i), best_rank = r;
      }
      if (best < 0) break;
      parts[best] += parts[best + 1];
      parts.erase(parts.begin() + best + 1);
    }
    Ids expected;
    for (const auto& p : parts) expected.push_back(rank_of(p));
    if (rank_of(text) >= 0) expected = {rank_of(text)};
    EXPECT_EQ(encode(llama3(), text), expected) << text;
  }
}

}  // namespace
}  // namespace herd_test
