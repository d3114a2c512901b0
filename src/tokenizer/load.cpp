// load_model(): format detection by content, never by file name.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/check.h"
#include "common/gguf-file.h"
#include "common/mmap.h"
#include "tokenizer/gguf-vocab.h"
#include "tokenizer/hf-json.h"
#include "tokenizer/model.h"
#include "tokenizer/spm-model.h"
#include "tokenizer/tiktoken-file.h"

namespace herd::tok {
namespace {

std::string find_in_directory(const std::filesystem::path& dir) {
  for (const char* name : {"tokenizer.json", "tokenizer.model"})
    if (std::filesystem::is_regular_file(dir / name)) return (dir / name).string();
  fail_input(dir.string(), ": directory has no tokenizer.json or tokenizer.model");
}

// tokenizer_config.json beside a tokenizer.json holds the chat template: a string, or a list
// of named templates of which "default" is the chat one.
std::string chat_template_beside(const std::filesystem::path& tokenizer_file) {
  const auto config = tokenizer_file.parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(config, ec)) return "";
  const MappedFile file(config.string());
  const auto j = nlohmann::json::parse(file.data(), file.data() + file.size(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("chat_template")) return "";
  const auto& t = j["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array())
    for (const auto& named : t)
      if (named.is_object() && named.value("name", "") == "default" && named.contains("template"))
        return named["template"].is_string() ? named["template"].get<std::string>() : "";
  return "";
}

}  // namespace

std::unique_ptr<Model> load_model(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return load_model(find_in_directory(path));
  const MappedFile file(path);
  const std::string_view content(reinterpret_cast<const char*>(file.data()), file.size());
  HERD_REQUIRE(!content.empty(), path, ": empty file, not a tokenizer");
  if (GgufFile::has_magic(file.data(), file.size())) return load_gguf_vocab(GgufFile(file.data(), file.size(), path));
  const size_t first = content.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && content[first] == '{') {
    auto model = load_hf_json(content, path);
    model->set_chat_template(chat_template_beside(path));
    return model;
  }
  if (looks_like_tiktoken(content)) return load_tiktoken(content, path);
  if (looks_like_sentencepiece(content)) return load_sentencepiece(content, path);
  fail_input(path, ": not a tokenizer file (expected tiktoken BPE ranks, a Hugging Face "
                   "tokenizer.json or a SentencePiece model)");
}

}  // namespace herd::tok
