// The tokenizer.* keys of a GGUF file from a Hugging Face directory's tokenizer.json and
// tokenizer_config.json, as llama.cpp's convert_hf_to_gguf.py writes them for a Llama 3 vocabulary
// (its get_vocab_base and gguf-py's SpecialVocab): the byte-level BPE tokens with their types, the
// merges, the special token ids, whether BOS/EOS/SEP are added, and the chat template.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>

#include "common/check.h"
#include "common/gguf-writer.h"
#include "common/json-limits.h"
#include "common/read-file.h"
#include "model/quantize.h"

namespace herd {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Llama 3's pre-tokenizer pattern, which llama.cpp's converter recognises as "llama-bpe".
constexpr const char* kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// gguf-py's TokenType.
enum TokenType : int32_t { kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5 };

// The types of special token SpecialVocab looks up, in its order.
const std::vector<std::string> kSpecialTypes = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};

std::optional<json> read_json(const fs::path& p, uint64_t cap) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return std::nullopt;
  const std::string text = read_file(p.string(), cap, "a JSON file");
  std::optional<json> j = parse_json_limited(text, p.string());
  HERD_REQUIRE(j, p.string(), ": not valid JSON");
  return j;
}

const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

std::string string_or(const json* v, const std::string& fallback) {
  return v && v->is_string() ? v->get<std::string>() : fallback;
}

bool looks_special(const std::string& t) {
  auto wraps = [&](const std::string& a, const std::string& b) {
    return t.size() >= a.size() + b.size() && t.starts_with(a) && t.ends_with(b);
  };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" || wraps("<|", "|>") ||
         wraps("<\xef\xbd\x9c", "\xef\xbd\x9c>") || wraps("<unused", ">");
}

// The regex of a pre-tokenizer that splits with Llama 3's pattern and maps bytes (ByteLevel).
bool is_llama3_pretokenizer(const json& tj) {
  const json* pre = member(tj, "pre_tokenizer");
  if (!pre) return false;
  std::vector<const json*> steps{pre};
  if (string_or(member(*pre, "type"), "") == "Sequence") {
    steps.clear();
    if (const json* list = member(*pre, "pretokenizers"); list && list->is_array())
      for (const json& s : *list) steps.push_back(&s);
  }
  bool split = false, byte_level = false;
  for (const json* s : steps) {
    const std::string type = string_or(member(*s, "type"), "");
    if (type == "Split") {
      const json* pattern = member(*s, "pattern");
      split = split || (pattern && string_or(member(*pattern, "Regex"), "") == kLlama3Pattern);
    } else if (type == "ByteLevel") {
      byte_level = true;
    } else {
      return false;
    }
  }
  return split && byte_level;
}

// What SpecialVocab reads: special ids by type, add_<type>_token flags, the chat template, in the
// order it inserts them (which is the order they are written).
struct SpecialVocab {
  std::vector<std::pair<std::string, int64_t>> ids;
  std::vector<std::pair<std::string, bool>> add;
  std::optional<std::string> chat_template;

  void set_id(const std::string& type, const json* id) {
    if (!id || !id->is_number_integer()) return;
    for (const auto& [t, v] : ids)
      if (t == type) return;
    ids.emplace_back(type, id->get<int64_t>());
  }
  void set_add(const std::string& type, bool v, bool overwrite) {
    for (auto& [t, old] : add)
      if (t == type) {
        if (overwrite) old = v;
        return;
      }
    add.emplace_back(type, v);
  }
  bool has_add(const std::string& type) const {
    for (const auto& [t, v] : add)
      if (t == type) return true;
    return false;
  }
};

// U+2581 (SentencePiece's word mark) written as a space, as the converter pre-normalizes
// user-defined tokens.
std::string spaces_for_sentencepiece_marks(const std::string& text) {
  static const std::string kMark = "\xe2\x96\x81";
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, kMark.size(), kMark) == 0) {
      out += ' ';
      i += kMark.size();
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::string token_content(const json* entry) {
  if (!entry) return "";
  if (entry->is_string()) return entry->get<std::string>();
  if (entry->is_object()) return string_or(member(*entry, "content"), "");
  return "";
}

std::string special_id_of(const json& piece) {
  const json* st = member(piece, "SpecialToken");
  return st ? string_or(member(*st, "id"), "") : "";
}

std::string sequence_id_of(const json& piece) {
  const json* seq = member(piece, "Sequence");
  return seq ? string_or(member(*seq, "id"), "") : "";
}

SpecialVocab special_vocab(const json& tj, std::optional<json> tc, const json& config, const fs::path& dir) {
  SpecialVocab sv;
  std::vector<std::string> types = kSpecialTypes;
  const bool have_tc = tc && tc->is_object() && !tc->empty();
  std::string bos = have_tc ? token_content(member(*tc, "bos_token")) : "";
  std::string eos = have_tc ? token_content(member(*tc, "eos_token")) : "";
  const std::string cls = have_tc ? token_content(member(*tc, "cls_token")) : "";
  const std::string sep = have_tc ? token_content(member(*tc, "sep_token")) : "";
  if (bos.empty() && !cls.empty() && have_tc) (*tc)["bos_token"] = bos = cls;
  if (eos.empty() && !sep.empty() && have_tc) (*tc)["eos_token"] = eos = sep;

  if (const json* pp = member(tj, "post_processor")) {
    std::vector<const json*> procs;
    if (const json* list = member(*pp, "processors"); list && list->is_array()) {
      for (const json& p : *list) procs.push_back(&p);
    } else {
      procs.push_back(pp);
    }
    for (const json* p : procs) {
      const std::string type = string_or(member(*p, "type"), "");
      if (type == "ByteLevel") {
        sv.set_add("bos", false, false);
        sv.set_add("eos", false, false);
      } else if (type == "RobertaProcessing") {
        sv.set_add("bos", true, true);
        sv.set_add("eos", true, true);
        sv.set_add("sep", true, true);
      } else if (type == "TemplateProcessing") {
        // Only the leading and trailing special tokens of the single-sequence template, and
        // whether the pair template puts a separator between the sequences.
        const json* single = member(*p, "single");
        const json* pair = member(*p, "pair");
        std::string first, last;
        if (single && single->is_array() && single->size() > 1) {
          first = special_id_of(single->front());
          if (!first.empty()) {
            if (!have_tc) bos = first;
            sv.set_add("bos", first == bos || first == cls, true);
          }
          last = special_id_of(single->back());
          if (!last.empty()) {
            if (!have_tc) {
              eos = last;
            } else if (last != eos) {  // the old EOS becomes the end-of-turn (or end-of-message) token
              if (std::find(types.begin(), types.end(), "eot") == types.end()) {
                types.push_back("eot");
                (*tc)["eot_token"] = eos;
              } else if (std::find(types.begin(), types.end(), "eom") == types.end()) {
                types.push_back("eom");
                (*tc)["eom_token"] = eos;
              }
              (*tc)["eos_token"] = eos = last;
            }
            sv.set_add("eos", last == eos, true);
          }
        }
        if (pair && pair->is_array() && !pair->empty()) {
          size_t begin = !first.empty() && special_id_of(pair->front()) == first ? 1 : 0;
          size_t end = !last.empty() && special_id_of(pair->back()) == last ? pair->size() - 1 : pair->size();
          if (begin < end && sequence_id_of((*pair)[begin]) == "A" && sequence_id_of((*pair)[end - 1]) == "B" &&
              end - begin > 2) {
            const std::string sep_now = have_tc ? token_content(member(*tc, "sep_token")) : "";
            bool add_sep = false;
            const std::string e1 = special_id_of((*pair)[begin + 1]);
            if (!e1.empty() && (e1 == sep_now || e1 == eos) && last.empty()) add_sep = true;
            if (end - begin - 2 == 2) {
              const std::string e2 = special_id_of((*pair)[begin + 2]);
              if (!e2.empty() && (e2 == sep_now || e2 == eos)) add_sep = true;
            }
            sv.set_add("sep", add_sep, true);
          }
        }
      }
    }
  }
  if (have_tc) {
    if (const json* t = member(*tc, "chat_template"); t && t->is_string()) {
      sv.chat_template = t->get<std::string>();
    } else if (t && t->is_array()) {
      for (const json& e : *t)
        if (string_or(member(e, "name"), "") == "default") sv.chat_template = string_or(member(e, "template"), "");
    } else if (std::error_code ec; fs::is_regular_file(dir / "chat_template.jinja", ec)) {
      sv.chat_template = read_file((dir / "chat_template.jinja").string(), kMaxJsonFileBytes, "a chat template");
    } else if (std::optional<json> ct = read_json(dir / "chat_template.json", kMaxJsonFileBytes)) {
      if (const json* t2 = member(*ct, "chat_template"); t2 && t2->is_string())
        sv.chat_template = t2->get<std::string>();
    }
    const json* added = member(tj, "added_tokens");
    for (const std::string& type : types) {
      if (const json* a = member(*tc, ("add_" + type + "_token").c_str()); a && a->is_boolean() && !sv.has_add(type))
        sv.set_add(type, a->get<bool>(), false);
      const std::string content = token_content(member(*tc, (type + "_token").c_str()));
      if (content.empty() || !added || !added->is_array()) continue;
      for (const json& at : *added)
        if (string_or(member(at, "content"), "") == content) {
          sv.set_id(type, member(at, "id"));
          break;
        }
    }
  }
  for (const std::string& type : types) sv.set_id(type, member(config, (type + "_token_id").c_str()));
  return sv;
}

}  // namespace

void add_gguf_vocab(GgufWriter& w, const QuantizeInput& in, int64_t n_vocab) {
  const fs::path dir(in.dir);
  const fs::path tj_path = dir / "tokenizer.json";
  std::error_code ec;
  HERD_REQUIRE(fs::exists(tj_path, ec), in.dir,
               ": missing tokenizer.json; a GGUF file carries the model's tokenizer (herd quantize reads Llama 3's "
               "tokenizer.json)");
  const std::optional<json> tj = read_json(tj_path, kMaxTokenizerFileBytes);
  const std::string src = tj_path.string();
  const json* model = member(*tj, "model");
  HERD_REQUIRE(model && string_or(member(*model, "type"), "") == "BPE", src,
               ": model.type is not \"BPE\"; herd quantize writes GGUF vocabularies of byte-level BPE tokenizers");
  HERD_REQUIRE(is_llama3_pretokenizer(*tj), src,
               ": the pre-tokenizer is not Llama 3's (a Split on its pattern, then ByteLevel); herd quantize "
               "writes GGUF vocabularies of Llama 3 tokenizers (\"llama-bpe\") only");
  const json* vocab = member(*model, "vocab");
  HERD_REQUIRE(vocab && vocab->is_object(), src, ": model.vocab must be an object");

  std::vector<std::string> tokens(static_cast<size_t>(n_vocab));
  std::vector<int32_t> types(size_t(n_vocab), kUnused);
  std::vector<bool> seen(size_t(n_vocab), false);
  auto place = [&](const std::string& text, const json& id, int32_t type) {
    HERD_REQUIRE(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < n_vocab, src, ": token \"",
                 text, "\" has id ", id.dump(), ", outside the model's vocabulary of ", n_vocab);
    const auto i = size_t(id.get<int64_t>());
    tokens[i] = text;
    types[i] = type;
    seen[i] = true;
  };
  for (const auto& [text, id] : vocab->items()) place(text, id, kNormal);
  if (const json* added = member(*tj, "added_tokens"); added && added->is_array())
    for (const json& a : *added) {
      const std::string text = string_or(member(a, "content"), "");
      const json* id = member(a, "id");
      HERD_REQUIRE(id, src, ": an added token without an id");
      const bool special = member(a, "special") && (*member(a, "special")) == true;
      if (special || looks_special(text)) {
        place(text, *id, kControl);
      } else {
        place(spaces_for_sentencepiece_marks(text), *id, kUserDefined);
      }
    }
  for (int64_t i = 0; i < n_vocab; ++i)
    if (!seen[size_t(i)]) tokens[size_t(i)] = str_cat("[PAD", i, "]");

  std::vector<std::string> merges;
  if (const json* m = member(*model, "merges"); m && m->is_array()) {
    merges.reserve(m->size());
    for (const json& e : *m) {
      if (e.is_string()) {
        merges.push_back(e.get<std::string>());
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        // transformers >= 4.45 stores pairs; a space inside a part is written as U+0120.
        std::string joined;
        for (int k = 0; k < 2; ++k) {
          if (k) joined += ' ';
          for (char c : e[k].get<std::string>()) joined += c == ' ' ? std::string("\xc4\xa0") : std::string(1, c);
        }
        merges.push_back(std::move(joined));
      } else {
        fail_input(src, ": model.merges holds an entry that is neither \"a b\" nor [\"a\", \"b\"]");
      }
    }
  }
  HERD_REQUIRE(!merges.empty(), src, ": model.merges is empty; llama.cpp needs the merges of a BPE vocabulary");

  std::optional<json> tc = read_json(dir / "tokenizer_config.json", kMaxJsonFileBytes);
  const json config = json::parse(in.config_text);
  const SpecialVocab sv = special_vocab(*tj, tc ? std::optional<json>(*tc) : std::nullopt, config, dir);

  if (tc)
    if (const json* a = member(*tc, "add_prefix_space"); a && a->is_boolean())
      w.add_bool("tokenizer.ggml.add_space_prefix", a->get<bool>());
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", "llama-bpe");
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_i32s("tokenizer.ggml.token_type", types);
  w.add_strings("tokenizer.ggml.merges", merges);
  // gguf-py's keys (its spelling); types it has no key for (cls) are left out, as it does.
  static const std::map<std::string, std::string> kIdKeys = {
      {"bos", "bos_token_id"}, {"eos", "eos_token_id"}, {"unk", "unknown_token_id"}, {"sep", "seperator_token_id"},
      {"pad", "padding_token_id"}, {"mask", "mask_token_id"}, {"eot", "eot_token_id"}, {"eom", "eom_token_id"}};
  for (const auto& [type, id] : sv.ids) {
    auto key = kIdKeys.find(type);
    if (key == kIdKeys.end()) continue;
    HERD_REQUIRE(id >= 0 && id <= UINT32_MAX, src, ": the ", type, " token id ", id, " is negative or too large");
    w.add_u32("tokenizer.ggml." + key->second, uint32_t(id));
  }
  for (const auto& [type, v] : sv.add)
    if (type == "bos" || type == "eos" || type == "sep") w.add_bool("tokenizer.ggml.add_" + type + "_token", v);
  if (sv.chat_template) w.add_string("tokenizer.chat_template", *sv.chat_template);
}

}  // namespace herd
