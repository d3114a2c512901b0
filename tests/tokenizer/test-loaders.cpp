// Loading by content: tiktoken ranks, Hugging Face tokenizer.json (built here from
// tokenizer.model in HF's ByteLevel layout, and small hand-written ones), SentencePiece (a
// model trained here by libsentencepiece), and one-line errors on bad files.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <unistd.h>

#ifdef HERD_WITH_SENTENCEPIECE
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#endif

#include "tokenizer-fixture.h"

namespace herd_test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int32_t>;

const std::string kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("herd-tok-" + std::to_string(::getpid()))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& content) const {
    const std::string p = (path_ / name).string();
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

std::unique_ptr<herd::Tokenizer> load_ok(const std::string& path) {
  std::unique_ptr<herd::Tokenizer> t;
  const herd::Status s = herd::Tokenizer::load(path, &t);
  EXPECT_TRUE(s) << s.message();
  return t;
}

// GPT-2's bytes_to_unicode, written out from its definition (docs/llama31.md, "tokenizer.json").
std::string byte_level(const std::string& bytes) {
  std::string out;
  for (unsigned char b : bytes) {
    unsigned cp = b;
    if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)) {
      unsigned k = 0;
      for (unsigned x = 0; x < b; ++x) k += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
      cp = 0x100 + k;
    }
    if (cp < 0x80) out += char(cp);
    else out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 0x3F));
  }
  return out;
}

std::string base64_decode(const std::string& in) {
  const std::string abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    acc = (acc << 6) | unsigned(abc.find(c));
    if ((bits += 6) >= 8) out += char((acc >> (bits -= 8)) & 0xFF);
  }
  return out;
}

json llama3_pre_tokenizer() {
  json pre = json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": ""}, "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})");
  pre["pretokenizers"][0]["pattern"]["Regex"] = kLlama3Pattern;
  return pre;
}

// tokenizer.json the way HF's TikTokenConverter writes it: every split of a token into two
// tokens is a merge, ordered by the merged token's rank, then by the halves' ranks.
std::string llama3_tokenizer_json(size_t* n_merges) {
  std::vector<std::string> tokens;
  std::map<std::string, int> rank;
  std::istringstream in(read_file(data_path("tokenizer.model")));
  for (std::string b64, r; in >> b64 >> r;) {
    rank[base64_decode(b64)] = std::stoi(r);
    tokens.push_back(base64_decode(b64));
  }
  json vocab = json::object(), merges = json::array();
  for (size_t id = 0; id < tokens.size(); ++id) {
    const std::string& t = tokens[id];
    vocab[byte_level(t)] = id;
    std::vector<std::pair<std::pair<int, int>, json>> splits;
    for (size_t k = 1; k < t.size(); ++k) {
      const auto l = rank.find(t.substr(0, k)), r = rank.find(t.substr(k));
      if (l != rank.end() && r != rank.end())
        splits.push_back({{l->second, r->second}, byte_level(l->first) + " " + byte_level(r->first)});
    }
    std::sort(splits.begin(), splits.end(), [](auto& a, auto& b) { return a.first < b.first; });
    for (auto& s : splits) merges.push_back(s.second);
  }
  *n_merges = merges.size();
  json added = json::array();
  const auto specials = json::parse(read_file(data_path("special_tokens.json")))
                            .at("tables").at("hf_llama3.1_and_3.2_tokenizer_json");
  for (const auto& [id, name] : specials.items())
    added.push_back(json::object({{"id", std::stoi(id)}, {"content", name}, {"single_word", false},
                                  {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}}));
  json j = json::parse(R"({
    "version": "1.0", "normalizer": null, "decoder": {"type": "ByteLevel"},
    "post_processor": {"type": "Sequence", "processors": [
      {"type": "ByteLevel", "trim_offsets": false},
      {"type": "TemplateProcessing", "single": [
        {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]}]},
    "model": {"type": "BPE", "ignore_merges": true, "fuse_unk": false, "byte_fallback": false, "unk_token": null}})");
  j["pre_tokenizer"] = llama3_pre_tokenizer();
  j["added_tokens"] = added;
  j["model"]["vocab"] = vocab;
  j["model"]["merges"] = merges;
  return j.dump();
}

TEST(TokenizerLoad, HuggingFaceJsonBuiltFromTokenizerModel) {
  TempDir dir;
  size_t n_merges = 0;
  // Named like the other format on purpose: detection reads the content.
  const std::string path = dir.write("tokenizer.model", llama3_tokenizer_json(&n_merges));
  EXPECT_EQ(n_merges, 280147u);  // docs/llama31.md, "tokenizer.json"
  const auto tok = load_ok(path);
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->n_vocab(), 128256);
  EXPECT_EQ(tok->bos_id(), 128000);
  EXPECT_EQ(tok->id_of("<|eot_id|>"), 128009);
  for (const Vector& v : load_vectors()) {
    EXPECT_EQ(encode(*tok, v.text), v.ids) << v.text;
    EXPECT_EQ(decode(*tok, v.ids), v.text);
  }
  EXPECT_EQ(encode(*tok, "<|eot_id|>x", true, true), (Ids{128000, 128009, 87}));
}

// 256 byte tokens (ids = byte values), then he, ll, hell, hello and two added tokens.
json small_json() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level(std::string(1, char(b)))] = b;
  vocab["he"] = 256, vocab["ll"] = 257, vocab["hell"] = 258, vocab["hello"] = 259;
  json j = json::parse(R"({
    "added_tokens": [{"id": 260, "content": "<|end|>", "special": true}, {"id": 261, "content": "<s>", "special": true}],
    "post_processor": {"type": "TemplateProcessing", "single": [
      {"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]},
    "model": {"type": "BPE", "merges": ["h e", "l l", "he ll", "hell o"]}})");
  j["pre_tokenizer"] = llama3_pre_tokenizer();
  j["model"]["vocab"] = vocab;
  return j;
}

TEST(TokenizerLoad, SmallHandWrittenJson) {
  TempDir dir;
  json j = small_json();
  const auto tok = load_ok(dir.write("a.json", j.dump()));
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->n_vocab(), 262);
  EXPECT_EQ(tok->bos_id(), 261);
  // Worked by hand: he (256) merges first, then ll (257), then hell (258), then hello (259).
  EXPECT_EQ(encode(*tok, "hello"), (Ids{259}));
  EXPECT_EQ(encode(*tok, "helo"), (Ids{256, 'l', 'o'}));
  EXPECT_EQ(encode(*tok, "hellx"), (Ids{258, 'x'}));
  EXPECT_EQ(encode(*tok, " hello"), (Ids{' ', 259}));
  EXPECT_EQ(encode(*tok, "hello<|end|>", true, true), (Ids{261, 259, 260}));
  EXPECT_EQ(decode(*tok, {261, 259, 260, 10}), "<s>hello<|end|>\n");

  // Newer tokenizers write merges as pairs.
  j["model"]["merges"] = json::parse(R"([["h", "e"], ["l", "l"], ["he", "ll"], ["hell", "o"]])");
  const auto pairs = load_ok(dir.write("b.json", j.dump()));
  EXPECT_EQ(encode(*pairs, "hellx"), (Ids{258, 'x'}));

  // GPT-2 style: ByteLevel with its own regex (run through PCRE2): " hello" is one piece.
  j["pre_tokenizer"] = json::parse(R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})");
  const auto gpt2 = load_ok(dir.write("c.json", j.dump()));
  EXPECT_EQ(encode(*gpt2, "x  hello"), (Ids{'x', ' ', ' ', 259}));
}

// The chat template comes from chat_template.jinja beside tokenizer.json when there is one (what
// transformers writes today, and prefers), else from tokenizer_config.json.
TEST(TokenizerLoad, ChatTemplateFromJinjaFileOrTokenizerConfig) {
  TempDir dir;
  dir.write("tokenizer.json", small_json().dump());
  EXPECT_EQ(load_ok(dir.path())->chat_template(), "");
  dir.write("tokenizer_config.json", R"({"chat_template": "from the config"})");
  EXPECT_EQ(load_ok(dir.path())->chat_template(), "from the config");
  dir.write("chat_template.jinja", "{{ '<|im_start|>' }}");
  EXPECT_EQ(load_ok(dir.path())->chat_template(), "{{ '<|im_start|>' }}");
}

// A tokenizer.json whose post-processor adds no BOS (SmolLM2 as transformers saves it): the BOS is
// tokenizer_config.json's bos_token, available when asked for and not added by default.
TEST(TokenizerLoad, BosFromTokenizerConfigWhenThePostProcessorAddsNone) {
  TempDir dir;
  json j = small_json();
  j["post_processor"] = json::parse(R"({"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [], "special_tokens": {}})");
  dir.write("tokenizer.json", j.dump());
  const auto none = load_ok(dir.path());
  EXPECT_EQ(none->bos_id(), -1);
  dir.write("tokenizer_config.json", R"({"bos_token": {"content": "<s>", "special": true}})");
  const auto named = load_ok(dir.path());
  EXPECT_EQ(named->bos_id(), 261);
  EXPECT_FALSE(named->adds_bos());
  dir.write("tokenizer_config.json", R"({"bos_token": "<|end|>"})");
  EXPECT_EQ(load_ok(dir.path())->bos_id(), 260);
  dir.write("tokenizer_config.json", R"({"bos_token": "not a token"})");
  EXPECT_EQ(load_ok(dir.path())->bos_id(), -1);
}

TEST(TokenizerLoad, DetectsFormatByContentAndFindsFilesInDirectories) {
  TempDir dir;
  const auto tiktoken = load_ok(dir.write("tokenizer.json", read_file(data_path("tokenizer.model"))));
  ASSERT_TRUE(tiktoken);
  EXPECT_EQ(encode(*tiktoken, "Hello world"), (Ids{9906, 1917}));
  const auto from_dir = load_ok(dir.path());
  ASSERT_TRUE(from_dir);
  EXPECT_EQ(from_dir->n_vocab(), 128256);
}

// A vocabulary without a token for some byte (SmolLM2 lacks 21 control and invalid-UTF-8 bytes)
// loads, and the byte is dropped from the ids, as Hugging Face and llama.cpp drop it.
TEST(TokenizerLoad, BytesWithoutTokensAreDropped) {
  TempDir dir;
  json missing_byte = small_json();
  missing_byte["model"]["vocab"].erase(byte_level("\x07"));
  missing_byte["model"]["vocab"]["x7"] = 7;
  const auto t = load_ok(dir.write("tokenizer.json", missing_byte.dump()));
  ASSERT_TRUE(t);
  EXPECT_EQ(encode(*t, "a\x07" "b"), encode(*t, "ab"));
}

// Each bad file gives invalid_input with one line that names the file and the reason.
TEST(TokenizerLoad, BadFilesGiveOneLineErrors) {
  TempDir dir;
  json unordered = small_json();
  unordered["model"]["merges"] = json::parse(R"(["he ll", "h e"])");
  json bad_alphabet = small_json();
  bad_alphabet["model"]["vocab"].erase("hello");
  bad_alphabet["model"]["vocab"]["\u4e00"] = 259;
  json unigram = small_json();
  unigram["model"]["type"] = "Unigram";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty file"},
      {"hello there\n", "not a tokenizer file"},
      {"IQ== 0\nIg== 1\n!!! 2\n", "line 3"},
      {"IQ== 0\nIg== 5\n", "rank 1 is missing"},
      {"{\"model\": ", "not a usable tokenizer.json"},
      {unordered.dump(), "not in token order"},
      {bad_alphabet.dump(), "not in the byte-level alphabet"},
      {unigram.dump(), "Unigram"},
      {std::string("GGUF\x03\0\0\0", 8), "truncated: tensor count"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = dir.write("bad" + std::to_string(i), cases[i].first);
    std::unique_ptr<herd::Tokenizer> t;
    const herd::Status s = herd::Tokenizer::load(path, &t);
    EXPECT_EQ(s.code(), herd::Status::Code::invalid_input) << i;
    EXPECT_FALSE(t);
    EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(cases[i].second), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
  }
  std::unique_ptr<herd::Tokenizer> t;
  EXPECT_NE(herd::Tokenizer::load(dir.path() + "/nope", &t).message().find("nope"), std::string::npos);
  fs::create_directories(dir.path() + "/empty");
  EXPECT_NE(herd::Tokenizer::load(dir.path() + "/empty", &t).message().find("no tokenizer.json"), std::string::npos);
}

#ifdef HERD_WITH_SENTENCEPIECE
// A small model trained here by libsentencepiece; its own processor is the reference.
TEST(TokenizerLoad, SentencePieceTrainedAtTestTime) {
  TempDir dir;
  std::string corpus;
  for (int rep = 0; rep < 4; ++rep)
    for (const Vector& v : load_vectors()) corpus += v.text + "\n";
  const std::string corpus_path = dir.write("corpus.txt", corpus);
  const std::string prefix = dir.path() + "/spm";
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + corpus_path + " --model_prefix=" + prefix +
      " --vocab_size=1000 --model_type=bpe --byte_fallback=true --character_coverage=0.9995 --minloglevel=2");
  ASSERT_TRUE(status.ok()) << status.ToString();
  fs::rename(prefix + ".model", dir.path() + "/weights.bin");  // detection by content, not name
  const auto tok = load_ok(dir.path() + "/weights.bin");
  ASSERT_TRUE(tok);
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(dir.path() + "/weights.bin").ok());
  EXPECT_EQ(tok->n_vocab(), sp.GetPieceSize());
  EXPECT_EQ(tok->bos_id(), sp.bos_id());
  EXPECT_EQ(tok->id_of("</s>"), sp.eos_id());
  for (const Vector& v : load_vectors()) {
    std::vector<int> expected;
    ASSERT_TRUE(sp.Encode(v.text, &expected).ok());
    const Ids ids = encode(*tok, v.text);
    EXPECT_EQ(ids, Ids(expected.begin(), expected.end())) << v.text;
    std::string expected_text;
    ASSERT_TRUE(sp.Decode(expected, &expected_text).ok());
    EXPECT_EQ(decode(*tok, ids), expected_text) << v.text;
    herd::TokenStream stream(*tok);
    std::string streamed;
    for (int32_t id : ids) EXPECT_TRUE(stream.push(id, &streamed));
    stream.flush(&streamed);
    EXPECT_EQ(streamed, expected_text);
  }
  EXPECT_EQ(encode(*tok, "Hi", false, true).front(), sp.bos_id());
}
#endif

}  // namespace
}  // namespace herd_test
