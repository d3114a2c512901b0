// What the byte-level BPE formats share (Hugging Face tokenizer.json, GGUF "gpt2" vocabularies):
// GPT-2's spelling of bytes as printable characters, its split pattern, and the merge-order
// rule that lets herd merge by token id.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace herd::tok {

// GPT-2's pattern, used by ByteLevel when use_regex is true.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// A token's bytes from its byte-level spelling; nullopt when a character is not in the alphabet.
std::optional<std::string> byte_level_to_bytes(std::string_view key);

// "left right" -> (left, right); invalid input naming `source` unless there is exactly one space.
std::pair<std::string, std::string> split_merge(std::string_view text, const std::string& source);

// Merging by rank reproduces the file only if each merge makes a token from two tokens and the
// merges come in the order of the merged tokens' ids (true of every tiktoken-derived vocabulary
// and of vocabularies trained by Hugging Face tokenizers). ids: byte-level spelling -> id.
void check_merge_order(const std::vector<std::pair<std::string, std::string>>& merges,
                       const std::unordered_map<std::string, int32_t>& ids, const std::string& source);

}  // namespace herd::tok
