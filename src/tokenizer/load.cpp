// load_model(): format detection by content, never by file name.
#include <filesystem>

#include "common/check.h"
#include "common/mmap.h"
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

}  // namespace

std::unique_ptr<Model> load_model(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return load_model(find_in_directory(path));
  const MappedFile file(path);
  const std::string_view content(reinterpret_cast<const char*>(file.data()), file.size());
  HERD_REQUIRE(!content.empty(), path, ": empty file, not a tokenizer");
  const size_t first = content.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && content[first] == '{') return load_hf_json(content, path);
  if (looks_like_tiktoken(content)) return load_tiktoken(content, path);
  if (content.substr(0, 4) == "GGUF")
    fail_input(path, ": a GGUF file; its embedded tokenizer is not supported here yet");
  if (looks_like_sentencepiece(content)) return load_sentencepiece(content, path);
  fail_input(path, ": not a tokenizer file (expected tiktoken BPE ranks, a Hugging Face "
                   "tokenizer.json or a SentencePiece model)");
}

}  // namespace herd::tok
