#include "tokenizer/hf-json.h"

#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/check.h"
#include "tokenizer/bpe-model.h"
#include "tokenizer/unicode.h"

namespace herd::tok {
namespace {

using nlohmann::json;

// GPT-2's pattern, used by ByteLevel when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Inverse of GPT-2's bytes_to_unicode: printable bytes stand for themselves, the other 68
// map to U+0100 + k in increasing byte order. Code points up to U+0143 are involved.
std::array<int16_t, 0x144> unicode_to_byte_table() {
  std::array<int16_t, 0x144> t{};
  t.fill(-1);
  int k = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    t[printable ? b : 0x100 + k++] = static_cast<int16_t>(b);
  }
  return t;
}

std::optional<std::string> byte_level_to_bytes(std::string_view key) {
  static const std::array<int16_t, 0x144> table = unicode_to_byte_table();
  std::string out;
  const auto* s = reinterpret_cast<const uint8_t*>(key.data());
  for (size_t i = 0; i < key.size();) {
    const DecodedChar c = decode_utf8(s + i, key.size() - i);
    if (c.cp >= table.size() || table[c.cp] < 0) return std::nullopt;
    out.push_back(static_cast<char>(table[c.cp]));
    i += c.len;
  }
  return out;
}

const json* find_typed(const json& node, std::string_view type) {
  if (!node.is_object()) return nullptr;
  if (node.value("type", "") == type) return &node;
  for (const char* list : {"pretokenizers", "processors"})
    if (node.contains(list))
      for (const json& child : node.at(list))
        if (const json* hit = find_typed(child, type)) return hit;
  return nullptr;
}

std::string split_pattern(const json& pre, const std::string& source) {
  const json* byte_level = find_typed(pre, "ByteLevel");
  HERD_REQUIRE(byte_level, source, ": pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
  HERD_REQUIRE(!byte_level->value("add_prefix_space", false), source,
               ": ByteLevel add_prefix_space is not supported");
  if (byte_level->value("use_regex", true)) return std::string(kGpt2Pattern);
  const json* split = find_typed(pre, "Split");
  HERD_REQUIRE(split && split->at("pattern").contains("Regex"), source,
               ": pre_tokenizer needs a Split step with a Regex pattern");
  HERD_REQUIRE(split->value("behavior", "") == "Isolated" && !split->value("invert", false), source,
               ": only Split with behavior Isolated (and invert false) is supported");
  return split->at("pattern").at("Regex").get<std::string>();
}

std::pair<std::string, std::string> merge_halves(const json& merge, const std::string& source) {
  if (merge.is_array()) return {merge.at(0).get<std::string>(), merge.at(1).get<std::string>()};
  const std::string text = merge.get<std::string>();
  const size_t space = text.find(' ');
  HERD_REQUIRE(space != std::string::npos && text.find(' ', space + 1) == std::string::npos, source,
               ": merge \"", text, "\" is not two tokens separated by one space");
  return {text.substr(0, space), text.substr(space + 1)};
}

// Merging by rank reproduces the file only if each merge makes a token from two tokens and
// the merges come in the order of the merged tokens' ids.
void check_merges(const json& merges, const std::unordered_map<std::string, int32_t>& ids,
                  const std::string& source) {
  int32_t last = -1;
  for (const json& m : merges) {
    const auto [left, right] = merge_halves(m, source);
    const auto l = ids.find(left), r = ids.find(right), lr = ids.find(left + right);
    HERD_REQUIRE(l != ids.end() && r != ids.end() && lr != ids.end(), source, ": merge \"", left, " ",
                 right, "\" uses or makes a string that is not in the vocabulary");
    HERD_REQUIRE(lr->second >= last, source, ": merge \"", left, " ", right,
                 "\" comes after a merge making a higher id; merges not in token order are not supported");
    last = lr->second;
  }
}

int32_t bos_from(const json& root, const SpecialTokens& specials) {
  const json* tp = root.contains("post_processor") ? find_typed(root.at("post_processor"), "TemplateProcessing") : nullptr;
  if (tp) {
    const json& single = tp->at("single");
    if (!single.empty() && single.at(0).contains("SpecialToken"))
      return specials.find(single.at(0).at("SpecialToken").at("id").get<std::string>());
    return -1;
  }
  return specials.find("<|begin_of_text|>");
}

std::unique_ptr<Model> build(const json& root, const std::string& source) {
  const json& model = root.at("model");
  HERD_REQUIRE(model.value("type", "") == "BPE", source, ": model type \"", model.value("type", ""),
               "\" is not supported (only BPE)");
  const std::string pattern = split_pattern(root.at("pre_tokenizer"), source);

  const json& vocab = model.at("vocab");
  std::vector<std::optional<std::string>> by_id(vocab.size());
  std::unordered_map<std::string, int32_t> ids;  // byte-level spelling -> id
  for (const auto& [key, value] : vocab.items()) {
    const int64_t id = value.get<int64_t>();
    HERD_REQUIRE(id >= 0 && size_t(id) < by_id.size() && !by_id[id], source, ": vocab id ", id, " of \"",
                 key, "\" is out of range or repeated (ids must be 0..", by_id.size() - 1, ")");
    by_id[id] = byte_level_to_bytes(key);
    HERD_REQUIRE(by_id[id].has_value(), source, ": vocab entry \"", key,
                 "\" is not in the byte-level alphabet");
    ids.emplace(key, static_cast<int32_t>(id));
  }
  check_merges(model.value("merges", json::array()), ids, source);

  const int32_t n_mergeable = static_cast<int32_t>(by_id.size());
  for (const json& added : root.value("added_tokens", json::array())) {
    const int64_t id = added.at("id").get<int64_t>();
    HERD_REQUIRE(id >= n_mergeable, source, ": added token ", id,
                 " has an id inside the BPE vocabulary; not supported");
    if (size_t(id) >= by_id.size()) by_id.resize(id + 1);
    HERD_REQUIRE(!by_id[id], source, ": added token id ", id, " is repeated");
    by_id[id] = added.at("content").get<std::string>();
  }
  TokenTable tokens;
  for (size_t id = 0; id < by_id.size(); ++id) {
    HERD_REQUIRE(by_id[id].has_value(), source, ": no token has id ", id, " (ids must have no gaps)");
    tokens.push_back(*by_id[id]);
  }
  SpecialTokens specials;
  for (int32_t id = n_mergeable; id < tokens.size(); ++id) specials.add(std::string(tokens.bytes(id)), id);
  const int32_t bos = bos_from(root, specials);
  return std::make_unique<BpeModel>(std::move(tokens), n_mergeable, pattern, bos, source);
}

}  // namespace

std::unique_ptr<Model> load_hf_json(std::string_view content, const std::string& source) {
  try {
    return build(json::parse(content), source);
  } catch (const json::exception& e) {
    fail_input(source, ": not a usable tokenizer.json: ", e.what());
  }
}

}  // namespace herd::tok
