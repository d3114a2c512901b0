// load_model(): format detection by content, never by file name.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/check.h"
#include "common/gguf-file.h"
#include "common/json-limits.h"
#include "common/mmap.h"
#include "common/read-file.h"
#include "tokenizer/gguf-vocab.h"
#include "tokenizer/hf-json.h"
#include "tokenizer/model.h"
#include "tokenizer/spm-model.h"
#include "tokenizer/tiktoken-file.h"

namespace herd::tok {
namespace {

// The first of the names present in any form: one that is not a regular file is refused, with
// its reason, by the loader rather than passed over.
std::string find_in_directory(const std::filesystem::path& dir) {
  for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
    std::error_code ec;
    if (std::filesystem::symlink_status(dir / name, ec).type() != std::filesystem::file_type::not_found)
      return (dir / name).string();
  }
  fail_input(dir.string(), ": directory has no tokenizer.json or tokenizer.model");
}

// The files transformers reads beside a tokenizer.json: the chat template from chat_template.jinja
// (what transformers has written since 4.43, and prefers) or tokenizer_config.json's
// "chat_template" (a string, or a list of named templates of which "default" is the chat one); and
// tokenizer_config.json's "bos_token" as the BOS when tokenizer.json's post-processor names none
// (a BOS `--bos` can ask for, not added by default).
void read_beside(const std::filesystem::path& tokenizer_file, Model& model) {
  std::error_code ec;
  auto present = [&](const std::string& p) {
    return std::filesystem::symlink_status(p, ec).type() != std::filesystem::file_type::not_found;
  };
  const std::string jinja = (tokenizer_file.parent_path() / "chat_template.jinja").string();
  if (present(jinja)) model.set_chat_template(read_file(jinja, kMaxJsonFileBytes, "a chat template"));
  const std::string config = (tokenizer_file.parent_path() / "tokenizer_config.json").string();
  if (!present(config)) return;
  const auto j = parse_json_limited(read_file(config, kMaxJsonFileBytes, "a JSON config"), config);
  HERD_REQUIRE(j && j->is_object(), config, ": not a JSON object");
  if (model.bos_id() < 0 && j->contains("bos_token")) {
    const auto& b = (*j)["bos_token"];
    const nlohmann::json* content = b.is_object() && b.contains("content") ? &b["content"] : &b;
    if (content->is_string())
      if (const int32_t id = model.specials().find(content->get<std::string>()); id >= 0) model.set_unadded_bos(id);
  }
  if (present(jinja) || !j->contains("chat_template") || (*j)["chat_template"].is_null()) return;
  const auto& t = (*j)["chat_template"];
  if (t.is_string()) return model.set_chat_template(t.get<std::string>());
  HERD_REQUIRE(t.is_array(), config, ": field \"chat_template\" must be a string or a list of named templates");
  for (const auto& named : t) {
    HERD_REQUIRE(named.is_object() && named.contains("name") && named["name"].is_string() &&
                     named.contains("template") && named["template"].is_string(),
                 config, ": field \"chat_template\" must list objects {\"name\": string, \"template\": string}");
    if (named["name"] == "default") return model.set_chat_template(named["template"].get<std::string>());
  }
}

std::unique_ptr<Model> load_file(const std::string& path) {
  const MappedFile file(path);
  const std::string_view content(reinterpret_cast<const char*>(file.data()), file.size());
  HERD_REQUIRE(!content.empty(), path, ": empty file, not a tokenizer");
  if (GgufFile::has_magic(file.data(), file.size())) return load_gguf_vocab(GgufFile(file.data(), file.size(), path));
  // Parsed whole, unlike a mapped GGUF model, so its size is bounded.
  HERD_REQUIRE(file.size() <= kMaxTokenizerFileBytes, path, ": ", file.size(), " bytes, more than the ",
               kMaxTokenizerFileBytes / kMiB, " MiB allowed for a tokenizer");
  const size_t first = content.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && content[first] == '{') {
    auto model = load_hf_json(content, path);
    read_beside(path, *model);
    return model;
  }
  if (looks_like_tiktoken(content)) return load_tiktoken(content, path);
  if (looks_like_sentencepiece(content)) return load_sentencepiece(content, path);
  fail_input(path, ": not a tokenizer file (expected tiktoken BPE ranks, a Hugging Face "
                   "tokenizer.json or a SentencePiece model)");
}

}  // namespace

std::unique_ptr<Model> load_model(const std::string& path) {
  std::error_code ec;
  return load_file(std::filesystem::is_directory(path, ec) ? find_in_directory(path) : path);
}

}  // namespace herd::tok
