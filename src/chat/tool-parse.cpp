#include "chat/tool-parse.h"

#include <algorithm>
#include <array>

#include "chat/py-literal.h"

namespace herd::chat {
namespace {

constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr std::string_view kFunctionOpen = "<function=";
constexpr std::string_view kFunctionClose = "</function>";
constexpr std::string_view kEom = "<|eom_id|>";
constexpr std::string_view kEot = "<|eot_id|>";
constexpr size_t kNone = std::string_view::npos;

enum class Try { call, not_call, incomplete };

struct Attempt {
  Try kind = Try::not_call;
  size_t end = 0;  // call: just past it; otherwise: where scanning resumes
  ToolCall call;
  std::string diagnostic;
};

bool is_separator(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ';'; }
bool only_separators(std::string_view s) { return std::all_of(s.begin(), s.end(), is_separator); }
bool only_space(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c != ';' && is_separator(c); });
}

// Just past the '}' matching text[open] (JSON strings respected), or kNone when the text ends first.
size_t match_brace(std::string_view text, size_t open) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = open; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}' && --depth == 0) {
      return i + 1;
    }
  }
  return kNone;
}

std::string at(size_t pos) { return " at byte " + std::to_string(pos); }

class Scanner {
 public:
  Scanner(std::string_view text, const std::vector<std::string>& builtins, bool final)
      : t_(text), builtins_(builtins), final_(final) {}

  Parsed run();

 private:
  void content(size_t b, size_t e) {
    if (b < e) ranges_.push_back({b, e});
  }
  void hold_from(size_t pos) { hold_ = std::min(hold_, pos); }
  void diagnose(std::string d) { out_.diagnostics.push_back(std::move(d)); }

  void scan_plain(size_t b, size_t e);
  void scan_tagged(size_t tag, size_t e);
  bool scan_python_list(size_t b, size_t e);
  Attempt try_json(size_t open, size_t e);
  Attempt try_function_tag(size_t start, size_t e);
  Attempt try_builtin(size_t start, size_t e);

  std::string_view t_;
  const std::vector<std::string>& builtins_;
  bool final_;
  Parsed out_;
  std::vector<std::pair<size_t, size_t>> ranges_;
  size_t hold_ = kNone;
};

Parsed Scanner::run() {
  size_t body_end = t_.size();
  if (t_.ends_with(kEom)) out_.end = End::eom;
  else if (t_.ends_with(kEot)) out_.end = End::eot;
  if (out_.end != End::length) body_end -= kEom.size();
  if (!final_ && out_.end == End::length) {
    // The tail may be the first bytes of a marker still being generated.
    static constexpr std::array<std::string_view, 5> kMarkers = {kPythonTag, kFunctionOpen, kFunctionClose, kEom, kEot};
    for (size_t k = std::min<size_t>(body_end, 13); k > 0 && hold_ == kNone; --k)
      for (std::string_view m : kMarkers)
        if (k < m.size() && m.starts_with(t_.substr(body_end - k, k))) hold_from(body_end - k);
  }

  const std::string_view body = t_.substr(0, body_end);
  if (const size_t tag = body.find(kPythonTag); tag != kNone) {
    scan_plain(0, tag);
    // Everything after the tag is a call the model is still writing.
    if (!final_) hold_from(tag);
    for (size_t s = tag; s != kNone;) {
      const size_t next = body.find(kPythonTag, s + kPythonTag.size());
      scan_tagged(s, next == kNone ? body_end : next);
      s = next;
    }
  } else if (!scan_python_list(0, body_end)) {
    scan_plain(0, body_end);
  }

  for (auto [b, e] : ranges_) {
    out_.content.append(t_.substr(b, e - b));
    if (b < hold_) out_.settled.append(t_.substr(b, std::min(e, hold_) - b));
  }
  // Whitespace alone around calls is not content; while only whitespace has come, it is held
  // so that what was shown stays a prefix of the final content.
  if (only_space(out_.content)) out_.content.clear();
  if (only_space(out_.settled)) {
    if (!out_.settled.empty()) hold_from(ranges_.front().first);
    out_.settled.clear();
  }
  out_.holding = hold_ != kNone;
  return std::move(out_);
}

// JSON calls and <function> tags anywhere in [b, e); everything else is content.
void Scanner::scan_plain(size_t b, size_t e) {
  const std::string_view text = t_.substr(0, e);
  size_t content_start = b, pos = b, prev_call_end = kNone;
  while (pos < e) {
    const size_t brace = text.find('{', pos), tag = text.find(kFunctionOpen, pos);
    const size_t c = std::min(brace, tag);
    if (c == kNone) break;
    const Attempt a = c == tag ? try_function_tag(c, e) : try_json(c, e);
    if (!a.diagnostic.empty()) diagnose(a.diagnostic);
    if (a.kind == Try::call) {
      // Separators between calls (`{...}; {...}`) belong to the list of calls.
      if (!(prev_call_end == content_start && only_separators(t_.substr(content_start, c - content_start))))
        content(content_start, c);
      out_.calls.push_back(a.call);
      content_start = pos = prev_call_end = a.end;
    } else if (a.kind == Try::incomplete) {
      const bool gap_is_separator =
          prev_call_end == content_start && only_separators(t_.substr(content_start, c - content_start));
      hold_from(gap_is_separator ? content_start : c);
      break;
    } else {
      pos = a.end;
    }
  }
  if (prev_call_end == content_start) {
    // Separators after a call are dropped if another call follows, so they wait until the next
    // text is known (a marker still being generated counts as unknown).
    size_t k = content_start;
    while (k < e && is_separator(t_[k])) ++k;
    if (!final_ && (k == e || k >= hold_)) hold_from(content_start);
    if (k == e) return;
  }
  content(content_start, e);
}

Attempt Scanner::try_json(size_t open, size_t e) {
  Attempt a;
  const std::string_view text = t_.substr(0, e);
  const size_t first = skip_py_space(text, open + 1);
  const bool may_be_call = first == e || text[first] == '"';
  const size_t close = match_brace(text, open);
  if (close == kNone) {
    a.end = open + 1;
    if (!may_be_call) return a;
    if (!final_) {
      a.kind = Try::incomplete;
    } else if (text.find("\"name\"", open) != kNone) {
      a.diagnostic = "a JSON tool call" + at(open) + " is not closed (cut off or malformed); kept as text";
    }
    return a;
  }
  // Not a call: scanning resumes inside it, so the decision never depends on whether a brace
  // further on closes it (text shown while streaming must stay content).
  a.end = open + 1;
  const std::string_view raw = text.substr(open, close - open);
  const Json j = Json::parse(raw, nullptr, false);
  const bool named = raw.find("\"name\"") != kNone;
  if (j.is_discarded()) {
    if (named) a.diagnostic = "a JSON tool call" + at(open) + " is not valid JSON; kept as text";
    return a;
  }
  if (!j.is_object() || !j.contains("name")) return a;
  const Json* args = j.contains("parameters") ? &j.at("parameters") : j.contains("arguments") ? &j.at("arguments") : nullptr;
  const bool typed_ok = !j.contains("type") || j.at("type") == "function";
  if (!j.at("name").is_string() || args == nullptr || !args->is_object() || !typed_ok) {
    a.diagnostic = "the JSON object" + at(open) +
                   " has \"name\" but is not a call (it needs a string name and a \"parameters\" or \"arguments\" "
                   "object); kept as text";
    return a;
  }
  a.kind = Try::call;
  a.end = close;
  a.call = {j.at("name").get<std::string>(), *args, std::string(raw)};
  return a;
}

Attempt Scanner::try_function_tag(size_t start, size_t e) {
  Attempt a;
  a.end = start + 1;
  const std::string_view text = t_.substr(0, e);
  size_t p = start + kFunctionOpen.size();
  const size_t name_begin = p;
  while (p < e && text[p] != '>' && text[p] != '{' && text[p] != '<' && text[p] != '\n') ++p;
  if (p == e) {
    if (!final_) a.kind = Try::incomplete;
    else a.diagnostic = "a <function=...> tag" + at(start) + " is cut off; kept as text";
    return a;
  }
  const std::string name(text.substr(name_begin, p - name_begin));
  if (text[p] != '>' || name.empty()) {
    a.diagnostic = "a <function=...> tag" + at(start) + " has no name or no closing '>'; kept as text";
    return a;
  }
  const size_t open = skip_py_space(text, p + 1);
  const size_t close = open < e && text[open] == '{' ? match_brace(text, open) : kNone;
  if (close == kNone) {
    if (!final_ && (open == e || text[open] == '{')) a.kind = Try::incomplete;
    else a.diagnostic = "<function=" + name + ">" + at(start) + " is not followed by a complete {...} object; kept as text";
    return a;
  }
  Json args = Json::parse(text.substr(open, close - open), nullptr, false);
  if (args.is_discarded()) {
    // Models sometimes write a Python dict here ({'city': 'Paris'}).
    size_t q = open;
    if (parse_py_literal(text.substr(0, close), q, args) != PyParse::ok || q != close) args = Json();
  }
  if (!args.is_object()) {
    a.diagnostic = "the arguments of <function=" + name + ">" + at(start) + " are not a JSON object; kept as text";
    return a;
  }
  size_t end = close;
  const size_t after = skip_py_space(text, close);
  const std::string_view rest = text.substr(after);
  if (rest.starts_with(kFunctionClose)) {
    end = after + kFunctionClose.size();
  } else if (!final_ && !rest.empty() && kFunctionClose.starts_with(rest)) {
    a.kind = Try::incomplete;
    return a;
  }
  a.kind = Try::call;
  a.end = end;
  a.call = {name, std::move(args), std::string(text.substr(start, end - start))};
  return a;
}

// NAME.call(k="v", ...) at start, for NAME among the built-in tools.
Attempt Scanner::try_builtin(size_t start, size_t e) {
  Attempt a;
  const std::string_view text = t_.substr(0, e);
  const size_t name_end = scan_identifier(text, start);
  const std::string name(text.substr(start, name_end - start));
  if (name_end == start || !text.substr(name_end).starts_with(".call(") ||
      std::find(builtins_.begin(), builtins_.end(), name) == builtins_.end())
    return a;
  size_t p = name_end + 6;
  Json args;
  switch (parse_py_kwargs(text, p, args)) {
    case PyParse::ok:
      a.kind = Try::call;
      a.end = p;
      a.call = {name, std::move(args), std::string(text.substr(start, p - start))};
      return a;
    case PyParse::incomplete:
      a.diagnostic = "the built-in call " + name + ".call(" + at(start) + " is cut off; kept as text";
      break;
    case PyParse::bad:
      a.diagnostic = "the built-in call " + name + ".call(" + at(start) +
                     " does not have literal keyword arguments; kept as text";
      break;
  }
  a.kind = Try::incomplete;  // a broken built-in call is never reread as code
  return a;
}

// What follows one <|python_tag|> (up to e): a built-in call, JSON calls, or code.
void Scanner::scan_tagged(size_t tag, size_t e) {
  const size_t b = tag + kPythonTag.size();
  const size_t p = skip_py_space(t_.substr(0, e), b);
  if (p == e) {
    if (final_) diagnose("nothing follows <|python_tag|>" + at(tag) + "; kept as text");
    content(tag, e);
    return;
  }
  if (Attempt a = try_builtin(p, e); a.kind != Try::not_call) {
    if (a.kind == Try::call) {
      out_.calls.push_back(std::move(a.call));
      if (!only_space(t_.substr(a.end, e - a.end))) content(a.end, e);
    } else {
      diagnose(a.diagnostic);
      content(tag, e);
    }
    return;
  }
  if (t_[p] == '{') {
    const size_t n_calls = out_.calls.size(), n_ranges = ranges_.size();
    scan_plain(p, e);
    if (out_.calls.size() > n_calls && (ranges_.size() == n_ranges || ranges_[n_ranges].first > p)) return;
    // The text right after the tag is not a call: all of it stays text.
    out_.calls.resize(n_calls);
    ranges_.resize(n_ranges);
    if (final_) diagnose("the JSON after <|python_tag|>" + at(tag) + " is not a tool call; kept as text");
    content(tag, e);
    return;
  }
  if (out_.end == End::length) {
    // Without <|eom_id|> the code may be cut off; running half a program is worse than none.
    if (final_) diagnose("the code after <|python_tag|>" + at(tag) + " has no end marker (cut off?); kept as text");
    content(tag, e);
    return;
  }
  out_.calls.push_back({"code_interpreter", Json{{"code", std::string(t_.substr(b, e - b))}},
                        std::string(t_.substr(b, e - b))});
}

// The Llama 3.2 style: the whole message is [f(a=1), g(b="x")]. Returns false when the message
// is not such a list, leaving it to scan_plain.
bool Scanner::scan_python_list(size_t b, size_t e) {
  const std::string_view text = t_.substr(0, e);
  const size_t open = skip_py_space(text, b);
  if (open == e || text[open] != '[') return false;
  std::vector<ToolCall> calls;
  size_t p = open + 1;
  PyParse result = PyParse::ok;
  while (true) {
    p = skip_py_space(text, p);
    const size_t name_end = scan_identifier(text, p, /*with_dash=*/true);
    if (name_end == e) {
      result = PyParse::incomplete;
      break;
    }
    if (name_end == p || text[name_end] != '(') {
      result = p == e ? PyParse::incomplete : PyParse::bad;
      break;
    }
    size_t q = name_end + 1;
    Json args;
    result = parse_py_kwargs(text, q, args);
    if (result != PyParse::ok) break;
    calls.push_back({std::string(text.substr(p, name_end - p)), std::move(args), std::string(text.substr(p, q - p))});
    p = skip_py_space(text, q);
    if (p == e) {
      result = PyParse::incomplete;
      break;
    }
    if (text[p] == ',') {
      ++p;
      continue;
    }
    if (text[p] != ']' || !only_space(text.substr(p + 1))) result = PyParse::bad;
    break;
  }
  if (result == PyParse::ok) {
    for (ToolCall& c : calls) out_.calls.push_back(std::move(c));
    return true;
  }
  if (result == PyParse::incomplete) {
    if (!final_) {
      hold_from(open);
      content(b, e);
      return true;
    }
    if (!calls.empty() || scan_identifier(text, skip_py_space(text, open + 1), true) > open + 1)
      diagnose("a list of calls" + at(open) + " is cut off; kept as text");
  } else if (!calls.empty()) {
    diagnose("a list of calls" + at(open) + " holds something other than keyword-argument calls; kept as text");
  }
  return false;
}

}  // namespace

Parsed parse_completion(std::string_view text, const std::vector<std::string>& builtin_tools, bool final) {
  return Scanner(text, builtin_tools, final).run();
}

void ToolCallStream::push(std::string_view delta, std::string& visible) {
  text_.append(delta);
  const Parsed p = parse_completion(text_, builtins_, /*final=*/false);
  holding_ = p.holding;
  if (p.settled.size() > shown_.size()) {
    visible.append(p.settled, shown_.size());
    shown_ = p.settled;
  }
}

Parsed ToolCallStream::finish(std::string& visible) {
  Parsed p = parse_completion(text_, builtins_, /*final=*/true);
  if (p.content.compare(0, shown_.size(), shown_) == 0)
    visible.append(p.content, shown_.size());
  else  // a bug in the settled/final agreement; report it rather than show the text twice
    p.diagnostics.push_back("internal: the streamed text is not a prefix of the final content");
  text_.clear();
  shown_.clear();
  holding_ = false;
  return p;
}

}  // namespace herd::chat
