#include "tokenizer/hf-json.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/check.h"
#include "common/json-limits.h"
#include "tokenizer/bpe-model.h"
#include "tokenizer/byte-level.h"

namespace herd::tok {
namespace {

using nlohmann::json;

const json* find_typed(const json& node, std::string_view type) {
  if (!node.is_object()) return nullptr;
  if (node.value("type", "") == type) return &node;
  for (const char* list : {"pretokenizers", "processors"})
    if (node.contains(list))
      for (const json& child : node.at(list))
        if (const json* hit = find_typed(child, type)) return hit;
  return nullptr;
}

Pretokenizer split_pattern(const json& pre, const std::string& source) {
  const json* byte_level = find_typed(pre, "ByteLevel");
  HERD_REQUIRE(byte_level, source, ": pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
  HERD_REQUIRE(!byte_level->value("add_prefix_space", false), source,
               ": ByteLevel add_prefix_space is not supported");
  const json* digits = find_typed(pre, "Digits");
  HERD_REQUIRE(!digits || digits->value("individual_digits", false), source,
               ": a Digits pre-tokenizer without individual_digits is not supported");
  const bool isolate_digits = digits != nullptr;
  if (byte_level->value("use_regex", true)) return {std::string(kGpt2Pattern), isolate_digits};
  const json* split = find_typed(pre, "Split");
  HERD_REQUIRE(split && split->at("pattern").contains("Regex"), source,
               ": pre_tokenizer needs a Split step with a Regex pattern");
  HERD_REQUIRE(split->value("behavior", "") == "Isolated" && !split->value("invert", false), source,
               ": only Split with behavior Isolated (and invert false) is supported");
  return {split->at("pattern").at("Regex").get<std::string>(), isolate_digits};
}

std::vector<std::pair<std::string, std::string>> merge_pairs(const json& merges, const std::string& source) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const json& m : merges) {
    if (m.is_array()) out.emplace_back(m.at(0).get<std::string>(), m.at(1).get<std::string>());
    else out.push_back(split_merge(m.get<std::string>(), source));
  }
  return out;
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
  const Pretokenizer pre = split_pattern(root.at("pre_tokenizer"), source);

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
  check_merge_order(merge_pairs(model.value("merges", json::array()), source), ids, source);

  // Added tokens are matched in text as special tokens. Most files append them after the BPE
  // vocabulary (Llama 3); some give vocabulary ids (SmolLM2's <|im_start|> is id 1), which
  // then leave the BPE ranks.
  std::vector<int32_t> special_ids;
  const json& added_tokens = root.contains("added_tokens") ? root.at("added_tokens") : json::array();
  // Ids have no gaps, so none reaches past the vocabulary plus the added tokens: checked before
  // the id sizes the table.
  const int64_t id_end = int64_t(vocab.size() + added_tokens.size());
  for (const json& added : added_tokens) {
    const int64_t id = added.at("id").get<int64_t>();
    const std::string content = added.at("content").get<std::string>();
    HERD_REQUIRE(id >= 0 && id < id_end, source, ": added token id ", id, " of \"", content,
                 "\" is out of range (ids must be 0..", id_end - 1, ", with no gaps)");
    HERD_REQUIRE(!content.empty(), source, ": added token id ", id, " has empty content");
    if (size_t(id) >= by_id.size()) by_id.resize(size_t(id) + 1);
    HERD_REQUIRE(!by_id[id] || (size_t(id) < vocab.size() && *by_id[id] == content), source, ": added token id ", id,
                 " is repeated or differs from the vocabulary's token with that id");
    by_id[id] = content;
    special_ids.push_back(int32_t(id));
  }
  TokenTable tokens;
  for (size_t id = 0; id < by_id.size(); ++id) {
    HERD_REQUIRE(by_id[id].has_value(), source, ": no token has id ", id, " (ids must have no gaps)");
    tokens.push_back(*by_id[id]);
  }
  SpecialTokens specials;
  for (int32_t id : special_ids) {
    HERD_REQUIRE(!tokens.bytes(id).empty(), source, ": added token ", id, " has empty content");
    specials.add(std::string(tokens.bytes(id)), id);
  }
  const int32_t bos = bos_from(root, specials);
  return std::make_unique<BpeModel>(std::move(tokens), special_ids, pre, bos, source);
}

}  // namespace

std::unique_ptr<Model> load_hf_json(std::string_view content, const std::string& source) {
  try {
    const std::optional<json> root = parse_json_limited(content, source);
    HERD_REQUIRE(root, source, ": not a usable tokenizer.json: not valid JSON");
    return build(*root, source);
  } catch (const json::exception& e) {
    fail_input(source, ": not a usable tokenizer.json: ", e.what());
  }
}

}  // namespace herd::tok
