// Shared by the tokenizer tests: the Llama 3 tokenizer loaded once, and the test data.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "herd/tokenizer.h"

namespace herd_test {

inline std::string data_path(const std::string& name) { return std::string(HERD_TEST_DATA) + "/tokenizer/" + name; }

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Meta's tokenizer.model (tests/data/tokenizer/README.md), loaded once per process.
inline const herd::Tokenizer& llama3() {
  static const std::unique_ptr<herd::Tokenizer> tok = [] {
    std::unique_ptr<herd::Tokenizer> t;
    const herd::Status s = herd::Tokenizer::load(data_path("tokenizer.model"), &t);
    if (!s) throw std::runtime_error(s.message());
    return t;
  }();
  return *tok;
}

inline std::vector<int32_t> encode(const herd::Tokenizer& tok, const std::string& text, bool special = false,
                                   bool bos = false) {
  std::vector<int32_t> ids;
  const herd::Status s = tok.encode(text, special, bos, &ids);
  EXPECT_TRUE(s) << s.message();
  return ids;
}

inline std::string decode(const herd::Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::string text;
  const herd::Status s = tok.decode(ids, &text);
  EXPECT_TRUE(s) << s.message();
  return text;
}

struct Vector {
  std::string text;
  std::vector<int32_t> ids;
};

// tests/data/tokenizer/vectors.jsonl: 228 strings with the ids of four independent tokenizers.
std::vector<Vector> load_vectors(const std::string& name = "vectors.jsonl");
// llama.cpp's test-tokenizer-0 pairs (.inp strings split on the separator, .out id lines).
std::vector<Vector> load_llamacpp_vectors();

}  // namespace herd_test
