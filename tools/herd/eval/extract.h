// Answer extraction (docs/eval.md): what a generated text answers, under one rule, and the form
// in which answers and references are compared.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "task-file.h"

namespace herd_cli::eval {

// The answer as written in `text`, or nullopt when the rule finds none:
// - exact: the whole text;
// - last_number: the last number ("-1,234.50"; commas only as thousands separators);
// - boxed: the contents of the last \boxed{...} or \fbox{...}, braces balanced;
// - choice_letter: the capital letter after the last "answer is", "answer:" (any case, an
//   optional "(" or "**" before the letter); failing that, a capital letter that starts the text
//   ("B", "(B)", "B. Paris");
// - regex: the first match's first capture group (the whole match when the pattern has no group).
// When the rule cannot decide (a regex past its backtracking limits) it finds none and, given
// `error`, says why there.
std::optional<std::string> extract_answer(const Extraction& rule, std::string_view text, std::string* error = nullptr);

// The compared form of an extracted answer:
// - exact, regex: without surrounding whitespace;
// - last_number: without separators, a leading "+", leading zeros, or trailing decimal zeros
//   ("1,234.50" -> "1234.5", "-0" -> "0");
// - boxed: without whitespace, \left \right, the spacing commands \! \, \; \:, a trailing "."
//   and then surrounding $; \dfrac and \tfrac read as \frac;
// - choice_letter: the letter.
std::string normalize_answer(ExtractRule rule, std::string_view answer);

// The compared form of a reference answer. Rules that find their answer inside a text find it in
// the reference too, so "#### 72", "\boxed{72}" and "(B)" are fine references; nullopt when the
// reference holds no answer under the rule (a bad task line). exact and regex references are
// taken as they are.
std::optional<std::string> reference_answer(ExtractRule rule, std::string_view reference);

const char* extract_rule_name(ExtractRule rule);
std::optional<ExtractRule> extract_rule_from_name(std::string_view name);

}  // namespace herd_cli::eval
