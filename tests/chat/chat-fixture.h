// Shared by the chat tests: the test data and the Llama 3 tokenizer, loaded once.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "herd/chat.h"
#include "herd/tokenizer.h"

namespace herd_test {

using Json = nlohmann::ordered_json;

inline std::vector<Json> read_jsonl(const std::string& name) {
  std::ifstream in(std::string(HERD_TEST_DATA) + "/chat/" + name);
  EXPECT_TRUE(in.good()) << name;
  std::vector<Json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(Json::parse(line));
  return rows;
}

// Meta's tokenizer.model (tests/data/tokenizer/README.md).
inline const herd::Tokenizer& llama3() {
  static const std::unique_ptr<herd::Tokenizer> tok = [] {
    std::unique_ptr<herd::Tokenizer> t;
    const herd::Status s = herd::Tokenizer::load(std::string(HERD_TEST_DATA) + "/tokenizer/tokenizer.model", &t);
    if (!s) throw std::runtime_error(s.message());
    return t;
  }();
  return *tok;
}

// A tool call's arguments as a JSON value, so that tests compare values, not spacing.
inline Json args_of(const herd::ToolCall& c) { return Json::parse(c.arguments); }

}  // namespace herd_test
