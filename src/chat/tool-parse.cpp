#include "chat/tool-parse.h"

#include <algorithm>
#include <array>
#include <optional>

#include "chat/py-literal.h"
#include "common/json-limits.h"

namespace herd::chat {
namespace {

constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr std::string_view kFunctionOpen = "<function=";
constexpr std::string_view kFunctionClose = "</function>";
constexpr std::string_view kEom = "<|eom_id|>";
constexpr std::string_view kEot = "<|eot_id|>";
constexpr size_t kNone = std::string_view::npos;
// Objects that are not calls are searched for calls inside them (a call wrapped in other JSON),
// this many levels deep. Deeper, each byte would be parsed once per enclosing object: text like
// {"a": {"a": ...}} nested n deep would cost n parses of up to n bytes.
constexpr size_t kMaxSearchDepth = 8;
// A completion of a thousand broken calls gets this many diagnostics and a count of the rest.
constexpr size_t kMaxDiagnostics = 16;

enum class Try { call, not_call, incomplete };

struct Attempt {
  Try kind = Try::not_call;
  size_t end = 0;  // call: just past it; otherwise: where scanning resumes
  ToolCall call;
  std::string diagnostic;
};

bool is_separator(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ';'; }
bool only_space(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c != ';' && is_separator(c); });
}

// Where every '{' of a text closes. The scan from one '{' meets the next '{' outside a string and
// continues past its match, so the scans from all of them share their tails: one right-to-left
// pass answers them all, where scanning from each '{' in turn is quadratic on text like "{{{{".
class BraceIndex {
 public:
  // Just past the '}' matching text[open] (JSON strings respected), or kNone when the text ends
  // first. Every call passes the same text; after the first, open may not move back.
  size_t match(std::string_view text, size_t open) {
    if (from_ == kNone || open + 1 < from_) build(text, open + 1);
    return close_[open + 1 - from_];
  }

 private:
  // close_[i - from_]: scanning from i at depth 1 outside a string, just past the closing '}'.
  void build(std::string_view text, size_t from) {
    from_ = from;
    close_.assign(text.size() + 1 - from, kNone);
    size_t in1 = kNone, in2 = kNone;  // the same from i + 1 and i + 2 inside a string
    for (size_t i = text.size(); i-- > from;) {
      const char c = text[i];
      const size_t next = close_[i + 1 - from];
      const size_t in = c == '\\' ? in2 : c == '"' ? next : in1;
      size_t out = next;
      if (c == '"') out = in1;
      else if (c == '}') out = i + 1;
      else if (c == '{') out = next == kNone ? kNone : close_[next - from];
      close_[i - from] = out;
      in2 = in1;
      in1 = in;
    }
  }

  size_t from_ = kNone;
  std::vector<size_t> close_;
};

// Model output as JSON, or nullopt when it is not JSON or is nested deeper than any call
// (too_deep set): such a value must never reach the recursive code that copies, prints and frees.
std::optional<Json> parse_model_json(std::string_view raw, bool& too_deep) {
  try {
    return parse_json_limited<Json>(raw, "tool call");
  } catch (const Error&) {
    too_deep = true;
    return std::nullopt;
  }
}

std::string at(size_t pos) { return " at byte " + std::to_string(pos); }

class Scanner {
 public:
  Scanner(std::string_view text, const std::vector<std::string>& builtins, bool final, const Resume& from)
      : t_(text), builtins_(builtins), final_(final), start_(from), searched_(from.searched) {}

  Parsed run();

 private:
  void content(size_t b, size_t e) {
    if (b < e) ranges_.push_back({b, e});
  }
  void hold_from(size_t pos) { hold_ = std::min(hold_, pos); }
  void diagnose(std::string d) {
    if (out_.diagnostics.size() < kMaxDiagnostics) out_.diagnostics.push_back(std::move(d));
    else ++n_unreported_;
  }
  void mark_resume(size_t pos, bool after_call);
  bool may_parse(size_t open);
  bool mentions_name(size_t open, size_t e);

  void scan_plain(size_t b, size_t e, bool top);
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
  size_t n_unreported_ = 0;
  const Resume& start_;
  BraceIndex braces_;               // for the scan_plain under way
  std::vector<size_t> searched_;    // ends of the objects being searched that enclose the scan
  bool said_too_nested_ = false;
  bool name_looked_ = false;
  size_t name_at_ = kNone;          // the first "name" at or after the last JSON looked at
  size_t resume_pos_ = 0;
  bool resume_after_call_ = false;
  std::vector<size_t> resume_searched_;
};

// pos is a point where scanning could start afresh (Resume): note it, with the searched objects
// that are still open there.
void Scanner::mark_resume(size_t pos, bool after_call) {
  if (final_) return;
  resume_pos_ = pos;
  resume_after_call_ = after_call;
  resume_searched_.clear();
  for (size_t end : searched_)
    if (end > pos) resume_searched_.push_back(end);
}

// Whether the object at `open` may be parsed: not when it lies inside kMaxSearchDepth objects
// already searched.
bool Scanner::may_parse(size_t open) {
  std::erase_if(searched_, [open](size_t end) { return end <= open; });
  if (searched_.size() < kMaxSearchDepth) return true;
  if (final_ && !said_too_nested_)
    diagnose("JSON" + at(open) + " lies inside more than " + std::to_string(kMaxSearchDepth) +
             " objects that are not calls and is not searched for calls; kept as text");
  said_too_nested_ = true;
  return false;
}

// Whether "name" occurs in [open, e); the position found is kept, as open only grows.
bool Scanner::mentions_name(size_t open, size_t e) {
  if (!name_looked_ || (name_at_ != kNone && name_at_ < open)) name_at_ = t_.find("\"name\"", open);
  name_looked_ = true;
  return name_at_ != kNone && name_at_ + 6 <= e;
}

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
  const size_t b = start_.pos;
  resume_pos_ = b;
  resume_after_call_ = start_.after_call;
  resume_searched_ = start_.searched;
  if (const size_t tag = body.find(kPythonTag, b); tag != kNone) {
    // Everything after the tag is a call the model is still writing.
    if (!final_) hold_from(tag);
    scan_plain(b, tag, /*top=*/true);
    for (size_t s = tag; s != kNone;) {
      const size_t next = body.find(kPythonTag, s + kPythonTag.size());
      scan_tagged(s, next == kNone ? body_end : next);
      s = next;
    }
  } else if (b > 0 || !scan_python_list(0, body_end)) {  // a resumed parse is past any list
    scan_plain(b, body_end, /*top=*/true);
  }

  for (auto [rb, re] : ranges_) {
    out_.content.append(t_.substr(rb, re - rb));
    if (rb < hold_) out_.settled.append(t_.substr(rb, std::min(re, hold_) - rb));
  }
  // Whitespace alone around calls is not content; while only whitespace has come, it is held
  // so that what was shown stays a prefix of the final content.
  if (only_space(out_.content)) out_.content.clear();
  if (!start_.after_text && only_space(out_.settled)) {
    if (!out_.settled.empty()) hold_from(ranges_.front().first);
    out_.settled.clear();
  }
  out_.holding = hold_ != kNone;
  if (n_unreported_ > 0) out_.diagnostics.push_back("and " + std::to_string(n_unreported_) + " more like these");
  if (!final_) {
    // Only a point before everything held can be resumed from.
    if (resume_pos_ > hold_) {
      resume_pos_ = b;
      resume_after_call_ = start_.after_call;
      resume_searched_ = start_.searched;
    }
    Resume& r = out_.resume;
    r.pos = resume_pos_;
    r.after_call = resume_after_call_;
    r.after_text = start_.after_text;
    r.searched = std::move(resume_searched_);
    for (auto [rb, re] : ranges_) {
      if (rb >= resume_pos_) break;
      const std::string_view before = t_.substr(rb, std::min(re, resume_pos_) - rb);
      r.content += before.size();
      r.after_text = r.after_text || !only_space(before);
    }
  }
  return std::move(out_);
}

// JSON calls and <function> tags anywhere in [b, e); everything else is content. `top`: the
// scan of the message's own text, where a parse may be resumed (Resume).
void Scanner::scan_plain(size_t b, size_t e, bool top) {
  const std::string_view text = t_.substr(0, e);
  braces_ = BraceIndex();
  size_t content_start = b, pos = b;
  bool after_call = top && start_.after_call;  // content_start is the end of a call
  // [content_start, seps_end) holds only separators; the run is extended as far as asked.
  size_t seps_end = b;
  auto only_separators_to = [&](size_t upto) {
    while (seps_end < upto && is_separator(t_[seps_end])) ++seps_end;
    return seps_end >= upto;
  };
  // The next '{' and <function= at or after pos, each found once (finding both from every
  // candidate would read the text again for every one of them).
  size_t brace = text.find('{', b), tag = text.find(kFunctionOpen, b);
  bool incomplete = false;
  while (pos < e) {
    if (brace < pos) brace = text.find('{', pos);
    if (tag < pos) tag = text.find(kFunctionOpen, pos);
    const size_t c = std::min(brace, tag);
    if (c == kNone) break;
    // Separators between calls (`{...}; {...}`) belong to the list of calls, so a resumed
    // parse after a call must start past some content.
    const bool gap_is_separators = after_call && only_separators_to(c);
    if (top && !gap_is_separators) mark_resume(c, false);
    const Attempt a = c == tag ? try_function_tag(c, e) : try_json(c, e);
    if (!a.diagnostic.empty()) diagnose(a.diagnostic);
    if (a.kind == Try::call) {
      if (!gap_is_separators) content(content_start, c);
      out_.calls.push_back(a.call);
      content_start = pos = seps_end = a.end;
      after_call = true;
      if (top) mark_resume(a.end, true);
    } else if (a.kind == Try::incomplete) {
      hold_from(gap_is_separators ? content_start : c);
      incomplete = true;
      break;
    } else {
      pos = a.end;
    }
  }
  if (top && !incomplete) {
    // Nothing more can start before the end, or before a marker still being written.
    const size_t end = std::min(e, hold_);
    if (end >= pos && !(after_call && only_separators_to(end))) mark_resume(end, false);
  }
  if (after_call) {
    // Separators after a call are dropped if another call follows, so they wait until the next
    // text is known (a marker still being generated counts as unknown).
    only_separators_to(e);
    const size_t k = seps_end;
    if (!final_ && (k == e || k >= hold_)) hold_from(content_start);
    if (k == e) return;
  }
  content(content_start, e);
}

Attempt Scanner::try_json(size_t open, size_t e) {
  Attempt a;
  // Not a call: scanning resumes inside it, so the decision never depends on whether a brace
  // further on closes it (text shown while streaming must stay content).
  a.end = open + 1;
  const std::string_view text = t_.substr(0, e);
  const size_t first = skip_py_space(text, open + 1);
  // A call is an object with keys; code, sets and Python dicts are not even parsed.
  if (first < e && text[first] != '"') return a;
  const size_t close = braces_.match(text, open);
  if (close == kNone) {
    if (!final_) {
      a.kind = Try::incomplete;
    } else if (mentions_name(open, e)) {
      a.diagnostic = "a JSON tool call" + at(open) + " is not closed (cut off or malformed); kept as text";
    }
    return a;
  }
  if (!may_parse(open)) return a;
  const std::string_view raw = text.substr(open, close - open);
  bool too_deep = false;
  const std::optional<Json> parsed = parse_model_json(raw, too_deep);
  const bool named = raw.find("\"name\"") != kNone;
  const Json* args = nullptr;
  bool is_call = false;
  if (parsed && parsed->is_object() && parsed->contains("name")) {
    const Json& j = *parsed;
    args = j.contains("parameters") ? &j.at("parameters") : j.contains("arguments") ? &j.at("arguments") : nullptr;
    const bool typed_ok = !j.contains("type") || j.at("type") == "function";
    is_call = j.at("name").is_string() && args != nullptr && args->is_object() && typed_ok;
    if (!is_call)
      a.diagnostic = "the JSON object" + at(open) +
                     " has \"name\" but is not a call (it needs a string name and a \"parameters\" or "
                     "\"arguments\" object); kept as text";
  } else if (too_deep) {
    a.diagnostic = "the JSON" + at(open) + " is nested deeper than " + std::to_string(kMaxJsonDepth) +
                   " levels; kept as text";
  } else if (!parsed && named) {
    a.diagnostic = "a JSON tool call" + at(open) + " is not valid JSON; kept as text";
  }
  if (!is_call) {
    searched_.push_back(close);
    return a;
  }
  a.kind = Try::call;
  a.end = close;
  a.call = {parsed->at("name").get<std::string>(), *args, std::string(raw)};
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
  const size_t close = open < e && text[open] == '{' ? braces_.match(text, open) : kNone;
  if (close == kNone) {
    if (!final_ && (open == e || text[open] == '{')) a.kind = Try::incomplete;
    else a.diagnostic = "<function=" + name + ">" + at(start) + " is not followed by a complete {...} object; kept as text";
    return a;
  }
  if (!may_parse(start)) return a;
  bool too_deep = false;
  Json args = parse_model_json(text.substr(open, close - open), too_deep).value_or(Json());
  if (!too_deep && !args.is_object()) {
    // Models sometimes write a Python dict here ({'city': 'Paris'}).
    size_t q = open;
    if (parse_py_literal(text.substr(0, close), q, args) != PyParse::ok || q != close) args = Json();
  }
  if (!args.is_object()) {
    a.diagnostic = "the arguments of <function=" + name + ">" + at(start) +
                   (too_deep ? " are nested deeper than " + std::to_string(kMaxJsonDepth) + " levels"
                             : std::string(" are not a JSON object")) +
                   "; kept as text";
    searched_.push_back(close);
    return a;
  }
  size_t end = close;
  const size_t after = skip_py_space(text, close);
  const std::string_view rest = text.substr(after);
  if (rest.starts_with(kFunctionClose)) {
    end = after + kFunctionClose.size();
  } else if (!final_ && kFunctionClose.starts_with(rest)) {  // also when nothing follows yet
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
    case PyParse::too_deep:
      a.diagnostic = "the arguments of the built-in call " + name + ".call(" + at(start) + " are nested deeper than " +
                     std::to_string(kMaxJsonDepth) + " levels; kept as text";
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
    scan_plain(p, e, /*top=*/false);
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
  } else if (result == PyParse::too_deep) {
    diagnose("a list of calls" + at(open) + " is nested deeper than " + std::to_string(kMaxJsonDepth) +
             " levels; kept as text");
  } else if (!calls.empty()) {
    diagnose("a list of calls" + at(open) + " holds something other than keyword-argument calls; kept as text");
  }
  return false;
}

}  // namespace

Parsed parse_completion(std::string_view text, const std::vector<std::string>& builtin_tools, bool final,
                        const Resume& from) {
  return Scanner(text, builtin_tools, final, from).run();
}

void ToolCallStream::push(std::string_view delta, std::string& visible) {
  text_.append(delta);
  // Text held since resume_ is parsed again once it has grown by an eighth: each byte is read a
  // bounded number of times however long a call gets. Text that is not held is never waited on:
  // resume_ is then at the end of what came before.
  const size_t unread = text_.size() - parsed_size_, pending = text_.size() - resume_.pos;
  if (unread * 8 < pending) return;
  parsed_size_ = text_.size();
  Parsed p = parse_completion(text_, builtins_, /*final=*/false, resume_);
  holding_ = p.holding;
  if (content_before_resume_ + p.settled.size() > shown_.size()) {
    const std::string_view more = std::string_view(p.settled).substr(shown_.size() - content_before_resume_);
    visible.append(more);
    shown_.append(more);
  }
  content_before_resume_ += p.resume.content;
  resume_ = std::move(p.resume);
}

Parsed ToolCallStream::finish(std::string& visible) {
  Parsed p = parse_completion(text_, builtins_, /*final=*/true);
  if (p.content.compare(0, shown_.size(), shown_) == 0)
    visible.append(p.content, shown_.size());
  else  // a bug in the settled/final agreement; report it rather than show the text twice
    p.diagnostics.push_back("internal: the streamed text is not a prefix of the final content");
  text_.clear();
  shown_.clear();
  resume_ = {};
  content_before_resume_ = parsed_size_ = 0;
  holding_ = false;
  return p;
}

}  // namespace herd::chat
