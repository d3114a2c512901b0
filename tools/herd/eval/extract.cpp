#include "extract.h"

#include <array>
#include <cctype>
#include <utility>

namespace herd_cli::eval {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// --- last_number

std::optional<std::string> last_number(std::string_view s) {
  std::optional<std::string> found;
  size_t i = 0;
  while (i < s.size()) {
    if (!is_digit(s[i])) {
      ++i;
      continue;
    }
    size_t start = i;
    // A minus is a sign unless it joins two words or numbers ("3-4" is a range, "x=-5" a sign).
    if (start > 0 && s[start - 1] == '-' && !(start > 1 && (is_alpha(s[start - 2]) || is_digit(s[start - 2])))) --start;
    while (i < s.size() && is_digit(s[i])) ++i;
    // Thousands separators: a comma followed by exactly three digits.
    while (i + 3 < s.size() && s[i] == ',' && is_digit(s[i + 1]) && is_digit(s[i + 2]) && is_digit(s[i + 3]) &&
           (i + 4 == s.size() || !is_digit(s[i + 4])))
      i += 4;
    if (i + 1 < s.size() && s[i] == '.' && is_digit(s[i + 1])) {
      ++i;
      while (i < s.size() && is_digit(s[i])) ++i;
    }
    found = std::string(s.substr(start, i - start));
  }
  return found;
}

std::string normalize_number(std::string_view text) {
  std::string s;
  for (char c : trim(text))
    if (c != ',' && c != '+') s += c;
  const bool negative = !s.empty() && s[0] == '-';
  if (negative) s.erase(0, 1);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  size_t zeros = 0;  // leading zeros, keeping the one before a point or the last digit
  while (zeros + 1 < s.size() && s[zeros] == '0' && is_digit(s[zeros + 1])) ++zeros;
  s.erase(0, zeros);
  if (s.empty() || s == "0") return "0";
  return negative ? "-" + s : s;
}

// --- boxed

std::optional<std::string> last_boxed(std::string_view s) {
  size_t at = std::string_view::npos, len = 0;
  for (std::string_view cmd : {std::string_view("\\boxed"), std::string_view("\\fbox")}) {
    const size_t p = s.rfind(cmd);
    if (p != std::string_view::npos && (at == std::string_view::npos || p > at)) at = p, len = cmd.size();
  }
  if (at == std::string_view::npos) return std::nullopt;
  size_t i = at + len;
  while (i < s.size() && is_space(s[i])) ++i;
  if (i < s.size() && s[i] == '{') {
    int depth = 0;
    for (size_t j = i; j < s.size(); ++j) {
      if (s[j] == '{') ++depth;
      if (s[j] == '}' && --depth == 0) return std::string(s.substr(i + 1, j - i - 1));
    }
    return std::nullopt;  // cut off before its closing brace
  }
  // "\boxed 5": one argument without braces, up to a space or the closing $.
  const size_t start = i;
  while (i < s.size() && !is_space(s[i]) && s[i] != '$') ++i;
  if (i == start) return std::nullopt;
  return std::string(s.substr(start, i - start));
}

// Removes `command` where it is not the start of a longer command (\left but not \leftarrow).
void erase_command(std::string& s, std::string_view command) {
  for (size_t p = s.find(command); p != std::string::npos; p = s.find(command, p)) {
    const size_t end = p + command.size();
    if (is_alpha(command.back()) && end < s.size() && is_alpha(s[end])) {
      p = end;
      continue;
    }
    s.erase(p, command.size());
  }
}

std::string normalize_latex(std::string_view text) {
  std::string s;
  for (char c : text)
    if (!is_space(c)) s += c;
  for (std::string_view cmd : {"\\left", "\\right", "\\!", "\\,", "\\;", "\\:"}) erase_command(s, cmd);
  for (std::string_view frac : {"\\dfrac", "\\tfrac"})
    for (size_t p = s.find(frac); p != std::string::npos; p = s.find(frac, p)) s.replace(p, frac.size(), "\\frac");
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s.size() >= 2 && s.front() == '$' && s.back() == '$') s = s.substr(1, s.size() - 2);
  return s;
}

// --- choice_letter

// A capital letter standing alone at s[i] ("B", "B.", "B)") after optional "(", "[" or "*".
std::optional<char> letter_at(std::string_view s, size_t i) {
  while (i < s.size() && (is_space(s[i]) || s[i] == '(' || s[i] == '[' || s[i] == '*')) ++i;
  if (i < s.size() && is_upper(s[i]) && (i + 1 == s.size() || !is_alpha(s[i + 1]))) return s[i];
  return std::nullopt;
}

std::optional<std::string> choice_letter(std::string_view s) {
  std::string lower(s);
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  std::optional<char> found;
  for (size_t p = lower.find("answer"); p != std::string::npos; p = lower.find("answer", p + 1)) {
    size_t i = p + 6;
    while (i < s.size() && is_space(s[i])) ++i;
    if (lower.compare(i, 2, "is") == 0 && (i + 2 == s.size() || !is_alpha(s[i + 2]))) i += 2;
    while (i < s.size() && (is_space(s[i]) || s[i] == ':')) ++i;
    if (const auto letter = letter_at(s, i)) found = letter;
  }
  if (!found) found = letter_at(s, 0);
  if (!found) return std::nullopt;
  return std::string(1, *found);
}

constexpr std::array<std::pair<ExtractRule, const char*>, 5> kNames = {{{ExtractRule::exact, "exact"},
                                                                      {ExtractRule::last_number, "last_number"},
                                                                      {ExtractRule::boxed, "boxed"},
                                                                      {ExtractRule::choice_letter, "choice_letter"},
                                                                      {ExtractRule::regex, "regex"}}};

}  // namespace

std::optional<std::string> extract_answer(const Extraction& rule, std::string_view text, std::string* error) {
  switch (rule.rule) {
    case ExtractRule::exact: return std::string(text);
    case ExtractRule::last_number: return last_number(text);
    case ExtractRule::boxed: return last_boxed(text);
    case ExtractRule::choice_letter: return choice_letter(text);
    case ExtractRule::regex: {
      std::string found;
      switch (rule.pattern->search(text, &found)) {
        case Regex::Result::match: return found;
        case Regex::Result::no_match: return std::nullopt;
        case Regex::Result::too_complex:
          if (error) *error = "the pattern backtracked past its limits on this output; simplify it";
          return std::nullopt;
      }
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::string normalize_answer(ExtractRule rule, std::string_view answer) {
  switch (rule) {
    case ExtractRule::last_number: return normalize_number(answer);
    case ExtractRule::boxed: return normalize_latex(answer);
    case ExtractRule::exact:
    case ExtractRule::regex:
    case ExtractRule::choice_letter: break;
  }
  return std::string(trim(answer));
}

std::optional<std::string> reference_answer(ExtractRule rule, std::string_view reference) {
  std::optional<std::string> raw;
  switch (rule) {
    case ExtractRule::exact:
    case ExtractRule::regex: raw = std::string(reference); break;
    case ExtractRule::last_number: raw = last_number(reference); break;
    case ExtractRule::boxed: raw = last_boxed(reference).value_or(std::string(reference)); break;
    case ExtractRule::choice_letter: raw = choice_letter(reference); break;
  }
  if (!raw) return std::nullopt;
  return normalize_answer(rule, *raw);
}

const char* extract_rule_name(ExtractRule rule) {
  for (const auto& [r, name] : kNames)
    if (r == rule) return name;
  return "?";
}

std::optional<ExtractRule> extract_rule_from_name(std::string_view name) {
  for (const auto& [r, name_of] : kNames)
    if (name == name_of) return r;
  return std::nullopt;
}

}  // namespace herd_cli::eval
