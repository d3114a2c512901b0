// `herd tokenize` and `herd detokenize` (docs/cli.md): text on stdin <-> a JSON array of ids.
#include <charconv>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "herd/tokenizer.h"

namespace herd_cli {
namespace {

struct TokenizeFlags {
  std::string model;
  bool special = false;
  bool bos = false;
  bool jsonl = false;
};

std::string read_stdin() {
  std::ios::sync_with_stdio(false);
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

void append_ids(std::string& out, const std::vector<int32_t>& ids) {
  out += '[';
  char buf[16];
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out.append(buf, std::to_chars(buf, buf + sizeof buf, ids[i]).ptr);
  }
  out += ']';
}

int bad_input(const std::string& message) {
  std::cerr << "herd: error: " << message << "\n";
  return 2;
}

int load(const std::string& path, std::unique_ptr<herd::Tokenizer>* tok) { return report(herd::Tokenizer::load(path, tok)); }

int run_tokenize(const TokenizeFlags& f) {
  std::unique_ptr<herd::Tokenizer> tok;
  if (int rc = load(f.model, &tok)) return rc;
  const std::string input = read_stdin();
  std::string out;
  if (!f.jsonl) {
    std::vector<int32_t> ids;
    if (int rc = report(tok->encode(input, f.special, f.bos, &ids))) return rc;
    append_ids(out, ids);
    out += '\n';
  } else {
    std::istringstream lines(input);
    size_t line_no = 0;
    for (std::string line; std::getline(lines, line);) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = "stdin line " + std::to_string(line_no);
      if (int rc = report(herd::check_json_nesting(line, where))) return rc;
      nlohmann::ordered_json record = nlohmann::ordered_json::parse(line, nullptr, false);
      if (!record.is_object() || !record.contains("text") || !record["text"].is_string())
        return bad_input(where + ": expected a JSON object with a string \"text\"");
      std::vector<int32_t> ids;
      if (int rc = report(tok->encode(record["text"].get<std::string>(), f.special, f.bos, &ids))) return rc;
      record.erase("text");
      record["ids"] = ids;
      out += record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      out += '\n';
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int run_detokenize(const std::string& model) {
  std::unique_ptr<herd::Tokenizer> tok;
  if (int rc = load(model, &tok)) return rc;
  const std::string json = read_stdin();
  if (int rc = report(herd::check_json_nesting(json, "stdin"))) return rc;
  const nlohmann::json input = nlohmann::json::parse(json, nullptr, false);
  std::vector<int32_t> ids;
  bool ok = input.is_array();
  for (size_t i = 0; ok && i < input.size(); ++i) {
    ok = input[i].is_number_integer() && input[i].get<int64_t>() >= INT32_MIN && input[i].get<int64_t>() <= INT32_MAX;
    if (ok) ids.push_back(input[i].get<int32_t>());
  }
  if (!ok) return bad_input("stdin: expected a JSON array of token ids");
  std::string text;
  if (int rc = report(tok->decode(ids, &text))) return rc;
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

}  // namespace

void add_tokenize_commands(CLI::App& app, int& rc) {
  auto flags = std::make_shared<TokenizeFlags>();
  CLI::App* tokenize = app.add_subcommand("tokenize", "Encode stdin (taken byte for byte) and print a JSON array of ids");
  tokenize->add_option("-m,--model", flags->model,
                       "tokenizer.model (tiktoken or SentencePiece), tokenizer.json, or a directory holding one")
      ->required();
  tokenize->add_flag("--special", flags->special, "Let special-token text (<|eot_id|>) become special ids; by default it is plain text");
  tokenize->add_flag("--bos", flags->bos, "Put the BOS id first");
  tokenize->add_flag("--jsonl", flags->jsonl,
                     "Read lines {\"text\": ...} and print lines {\"ids\": [...]}, other keys echoed back");
  tokenize->callback([flags, &rc] { rc = run_tokenize(*flags); });

  auto model = std::make_shared<std::string>();
  CLI::App* detokenize = app.add_subcommand("detokenize", "Read a JSON array of ids on stdin and write the decoded bytes");
  detokenize->add_option("-m,--model", *model, "tokenizer file or directory, as for tokenize")->required();
  detokenize->callback([model, &rc] { rc = run_detokenize(*model); });
}

}  // namespace herd_cli
