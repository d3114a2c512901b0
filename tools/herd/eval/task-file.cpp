#include "task-file.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "extract.h"

namespace herd_cli::eval {
namespace {

using nlohmann::json;

// A problem with one field; parse_task_line turns it into "FILE:LINE: MESSAGE".
struct BadField {
  std::string message;
};

[[noreturn]] void fail(const std::string& key, const std::string& why) { throw BadField{"field '" + key + "': " + why}; }

// The item's object: typed getters that remember which keys were read, so that anything left
// over (a typo such as "anwser") is reported instead of silently ignored.
class Fields {
 public:
  explicit Fields(const json& object) : object_(object) {}

  bool has(const std::string& key) const { return object_.contains(key); }
  const json* get(const std::string& key) {
    used_.insert(key);
    const auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }
  std::optional<std::string> string(const std::string& key) {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) fail(key, "must be a string");
    return v->get<std::string>();
  }
  std::optional<int> integer(const std::string& key, int min) {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number_integer() || v->get<int64_t>() < min || v->get<int64_t>() > 1000000000)
      fail(key, "must be an integer >= " + std::to_string(min));
    return v->get<int>();
  }
  std::optional<float> number(const std::string& key) {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) fail(key, "must be a number");
    return v->get<float>();
  }
  std::vector<std::string> strings(const std::string& key, size_t min_size) {
    const json* v = get(key);
    if (!v) return {};
    if (!v->is_array() || v->size() < min_size) fail(key, "must be a list of at least " + std::to_string(min_size) + " strings");
    std::vector<std::string> out;
    for (const json& e : *v) {
      if (!e.is_string()) fail(key, "must be a list of at least " + std::to_string(min_size) + " strings");
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  void reject(const std::string& key, const std::string& why) {
    if (has(key)) fail(key, why);
  }
  void check_all_used() const {
    for (const auto& [key, value] : object_.items())
      if (!used_.count(key)) fail(key, "unknown field (docs/eval.md lists the fields)");
  }

 private:
  const json& object_;
  std::set<std::string> used_;
};

std::string json_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

MultipleChoice parse_multiple_choice(Fields& f) {
  for (const char* key : {"prompt", "messages", "system", "fewshot", "n", "max_tokens", "temperature", "top_p", "top_k",
                          "min_p", "stop", "extract", "pattern", "test", "pass_at"})
    f.reject(key, "is for generation items; this one has choices (multiple choice)");
  MultipleChoice mc;
  const auto context = f.string("context");
  if (!context) fail("context", "missing (a multiple-choice item needs the text the choices continue)");
  mc.context = *context;
  mc.choices = f.strings("choices", 2);
  for (const std::string& c : mc.choices)
    if (c.empty()) fail("choices", "a choice must not be empty (acc_norm divides by its length)");
  const json* answer = f.get("answer");
  if (!answer) fail("answer", "missing (the index of the right choice, from 0)");
  if (!answer->is_number_integer() || answer->get<int64_t>() < 0 || answer->get<int64_t>() >= int64_t(mc.choices.size()))
    fail("answer", "must be the index of the right choice, 0 to " + std::to_string(mc.choices.size() - 1));
  mc.answer = answer->get<int>();
  if (auto d = f.string("delimiter")) mc.delimiter = *d;
  return mc;
}

std::vector<herd::Message> parse_messages(Fields& f) {
  std::vector<herd::Message> out;
  if (auto system = f.string("system")) out.push_back({"system", *system, false, {}});
  if (const json* shots = f.get("fewshot")) {
    if (!shots->is_array()) fail("fewshot", "must be a list of {\"user\": ..., \"assistant\": ...}");
    for (const json& s : *shots) {
      if (!s.is_object() || s.size() != 2 || !s.contains("user") || !s.contains("assistant") || !s["user"].is_string() ||
          !s["assistant"].is_string())
        fail("fewshot", "each example must be {\"user\": TEXT, \"assistant\": TEXT}");
      out.push_back({"user", s["user"].get<std::string>(), false, {}});
      out.push_back({"assistant", s["assistant"].get<std::string>(), false, {}});
    }
  }
  const json* messages = f.get("messages");
  if (!messages->is_array() || messages->empty()) fail("messages", "must be a non-empty list of {\"role\", \"content\"}");
  for (const json& m : *messages) {
    if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["content"].is_string() ||
        !m["role"].is_string() || m.size() != 2)
      fail("messages", "each message must be {\"role\": ROLE, \"content\": TEXT}");
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant")
      fail("messages", "role '" + role + "' is not system, user or assistant");
    out.push_back({role, m["content"].get<std::string>(), false, {}});
  }
  return out;
}

TestCommand parse_test(const json& v) {
  const char* shape = "must be {\"command\": TEXT, \"prefix\"?: TEXT, \"suffix\"?: TEXT, \"timeout_s\"?: SECONDS}";
  if (!v.is_object()) fail("test", shape);
  TestCommand t;
  for (const auto& [key, value] : v.items()) {
    if (key == "timeout_s") {
      if (!value.is_number() || !(value.get<double>() > 0)) fail("test", "timeout_s must be a number > 0");
      t.timeout_s = value.get<double>();
      continue;
    }
    if (!value.is_string()) fail("test", shape);
    if (key == "command") t.command = value.get<std::string>();
    else if (key == "prefix") t.prefix = value.get<std::string>();
    else if (key == "suffix") t.suffix = value.get<std::string>();
    else fail("test", "unknown key '" + key + "'; " + shape);
  }
  if (t.command.empty()) fail("test", "command is missing or empty");
  return t;
}

Extraction parse_extraction(Fields& f, bool* explicit_rule) {
  Extraction e;
  const auto name = f.string("extract");
  *explicit_rule = name.has_value();
  if (name) {
    const auto rule = extract_rule_from_name(*name);
    if (!rule) fail("extract", "'" + *name + "' is not one of exact, last_number, boxed, choice_letter, regex");
    e.rule = *rule;
  }
  const auto pattern = f.string("pattern");
  if (e.rule != ExtractRule::regex) {
    if (pattern) fail("pattern", "is used only with \"extract\": \"regex\"");
    return e;
  }
  if (!pattern) fail("pattern", "missing (\"extract\": \"regex\" needs one)");
  std::string error;
  e.pattern = Regex::compile(*pattern, &error);
  if (!e.pattern) fail("pattern", "not a valid regular expression (PCRE2: " + error + ")");
  return e;
}

Generation parse_generation(Fields& f) {
  f.reject("context", "is for multiple-choice items, which need choices");
  f.reject("delimiter", "is for multiple-choice items, which need choices");
  Generation g;
  if (f.has("prompt") == f.has("messages")) fail("prompt", "give either prompt (raw text) or messages (a chat), not both");
  if (f.has("prompt")) {
    f.reject("system", "needs messages (a prompt is raw text; put the system text in it)");
    f.reject("fewshot", "needs messages (a prompt is raw text; put the examples in it)");
    g.prompt = f.string("prompt");
  } else {
    g.messages = parse_messages(f);
  }
  g.n = f.integer("n", 1).value_or(1);
  g.max_tokens = f.integer("max_tokens", 1);
  g.sampling.temperature = f.number("temperature");
  g.sampling.top_p = f.number("top_p");
  g.sampling.min_p = f.number("min_p");
  g.sampling.top_k = f.integer("top_k", 0);
  g.sampling.stop = f.strings("stop", 0);
  g.extract = parse_extraction(f, &g.has_extract);
  if (const json* test = f.get("test")) {
    g.test = parse_test(*test);
    f.reject("answer", "is not used when a test command decides (put reference solutions in meta)");
    const json* ks = f.get("pass_at");
    if (ks && (!ks->is_array() || ks->empty())) fail("pass_at", "must be a non-empty list of k values");
    for (const json& k : ks ? *ks : json::array({1})) {
      if (!k.is_number_integer() || k.get<int64_t>() < 1 || k.get<int64_t>() > g.n)
        fail("pass_at", "each k must be an integer from 1 to n (" + std::to_string(g.n) + ")");
      g.pass_at.push_back(k.get<int>());
    }
    return g;
  }
  f.reject("pass_at", "needs a test command");
  const json* answer = f.get("answer");
  if (!answer || !(answer->is_string() || answer->is_number()))
    fail("answer", "missing (a generation item needs a reference answer, a string or number, or a test command)");
  g.answer = json_text(*answer);
  if (!reference_answer(g.extract.rule, *g.answer))
    fail("answer", "'" + *g.answer + "' holds no answer under the rule " + extract_rule_name(g.extract.rule));
  return g;
}

}  // namespace

herd::Status parse_task_line(const std::string& line, const std::string& origin, const std::string& task,
                             TaskItem* item) {
  // Fields are printed back (meta goes into the results), which recurses once per level.
  if (herd::Status s = herd::check_json_nesting(line, origin); !s) return s;
  json object;
  try {
    object = json::parse(line);
  } catch (const json::parse_error& e) {
    return herd::Status::invalid_input(origin + ": not valid JSON (" + e.what() + ")");
  }
  if (!object.is_object()) return herd::Status::invalid_input(origin + ": an item must be a JSON object");
  try {
    Fields f(object);
    item->origin = origin;
    const json* id = f.get("id");
    if (!id || !(id->is_string() || id->is_number_integer()) || json_text(*id).empty())
      fail("id", "missing or empty (every item needs a unique string or integer id; --out is resumed by it)");
    item->id = json_text(*id);
    item->task = f.string("task").value_or(task);
    if (item->task.empty()) fail("task", "must not be empty");
    item->subject = f.string("subject").value_or("");
    if (const json* meta = f.get("meta")) item->meta = meta->dump();
    if (f.has("choices")) item->kind = parse_multiple_choice(f);
    else if (f.has("prompt") || f.has("messages")) item->kind = parse_generation(f);
    else fail("choices", "an item needs choices (multiple choice) or prompt/messages (generation)");
    f.check_all_used();
  } catch (const BadField& e) {
    return herd::Status::invalid_input(origin + ": " + e.message);
  } catch (const json::exception& e) {  // a number out of range for its type
    return herd::Status::invalid_input(origin + ": " + e.what());
  }
  return herd::Status::ok();
}

herd::Status parse_task_file(const std::string& path, std::vector<TaskItem>* items) {
  std::string text;
  if (herd::Status s = herd::read_file(path, herd::FileKind::text, &text); !s) return s;
  std::istringstream in(text);
  const std::string task = std::filesystem::path(path).stem().string();
  std::map<std::pair<std::string, std::string>, int> seen;  // (task, id) -> line
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines are allowed
    TaskItem item;
    const std::string origin = path + ":" + std::to_string(n);
    if (herd::Status s = parse_task_line(line, origin, task, &item); !s) return s;
    const auto [it, fresh] = seen.emplace(std::make_pair(item.task, item.id), n);
    if (!fresh)
      return herd::Status::invalid_input(origin + ": field 'id': '" + item.id + "' is already used on line " +
                                         std::to_string(it->second) + " (ids must be unique within a task)");
    items->push_back(std::move(item));
  }
  if (items->empty()) return herd::Status::invalid_input(path + ": no items (one JSON object per line)");
  return herd::Status::ok();
}

}  // namespace herd_cli::eval
