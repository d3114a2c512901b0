// Answer extraction, each rule against answers worked out by hand (docs/eval.md).
#include <gtest/gtest.h>

#include <chrono>

#include "extract.h"

namespace herd_cli::eval {
namespace {

Extraction rule(ExtractRule r, const char* pattern = nullptr) {
  Extraction e;
  e.rule = r;
  std::string error;
  if (pattern) e.pattern = Regex::compile(pattern, &error);
  EXPECT_EQ(error, "");
  return e;
}

// What an output scores as: extracted, then normalized.
std::optional<std::string> scored(const Extraction& e, std::string_view text) {
  auto a = extract_answer(e, text);
  if (a) a = normalize_answer(e.rule, *a);
  return a;
}

TEST(Extract, ExactIsTheWholeTextTrimmed) {
  EXPECT_EQ(scored(rule(ExtractRule::exact), "  Paris \n"), "Paris");
  EXPECT_EQ(extract_answer(rule(ExtractRule::exact), " x "), " x ");  // raw: as written
  EXPECT_EQ(reference_answer(ExtractRule::exact, "Paris "), "Paris");
}

TEST(Extract, LastNumber) {
  const Extraction e = rule(ExtractRule::last_number);
  EXPECT_EQ(extract_answer(e, "I have 3 apples and $1,234.50 left."), "1,234.50");
  EXPECT_EQ(scored(e, "I have 3 apples and $1,234.50 left."), "1234.5");
  EXPECT_EQ(scored(e, "She pays 18.00 dollars"), "18");
  EXPECT_EQ(scored(e, "x = -5"), "-5");
  EXPECT_EQ(scored(e, "pages 3-4"), "4");        // a range, not a negative number
  EXPECT_EQ(scored(e, "1,2345"), "2345");        // a comma that is no thousands separator ends a number
  EXPECT_EQ(scored(e, "agent 007"), "7");
  EXPECT_EQ(scored(e, "-0.0"), "0");
  EXPECT_EQ(scored(e, "0.50 and then 10"), "10");
  EXPECT_EQ(scored(e, "no digits here"), std::nullopt);
  EXPECT_EQ(reference_answer(ExtractRule::last_number, "Janet sells 16 - 3 - 4 = 9 eggs.\n#### 18"), "18");
  EXPECT_EQ(reference_answer(ExtractRule::last_number, "1,000"), "1000");
  EXPECT_EQ(reference_answer(ExtractRule::last_number, "none"), std::nullopt);
}

TEST(Extract, Boxed) {
  const Extraction e = rule(ExtractRule::boxed);
  EXPECT_EQ(extract_answer(e, "so $\\boxed{\\frac{1}{2}}$."), "\\frac{1}{2}");
  EXPECT_EQ(extract_answer(e, "\\boxed{x^{2}} then \\boxed{ 3 }"), " 3 ");  // the last one, braces balanced
  EXPECT_EQ(extract_answer(e, "\\boxed{1} or \\fbox{2}"), "2");
  EXPECT_EQ(extract_answer(e, "\\boxed 5$"), "5");
  EXPECT_EQ(extract_answer(e, "cut off \\boxed{\\frac{1}{2}"), std::nullopt);
  EXPECT_EQ(extract_answer(e, "no box"), std::nullopt);
  EXPECT_EQ(scored(e, "\\boxed{\\left( 1, 2 \\right)}"), "(1,2)");
  EXPECT_EQ(scored(e, "\\boxed{\\dfrac{3}{4}}"), "\\frac{3}{4}");
  EXPECT_EQ(scored(e, "\\boxed{x \\leftarrow y}"), "x\\leftarrowy");  // \left only as itself
  EXPECT_EQ(normalize_answer(ExtractRule::boxed, "$5$."), "5");
  EXPECT_EQ(reference_answer(ExtractRule::boxed, "\\boxed{\\tfrac{3}{4}}"), "\\frac{3}{4}");
  EXPECT_EQ(reference_answer(ExtractRule::boxed, "\\frac{3}{4}"), "\\frac{3}{4}");  // a bare reference
}

TEST(Extract, ChoiceLetter) {
  const Extraction e = rule(ExtractRule::choice_letter);
  EXPECT_EQ(scored(e, "The answer is (B)."), "B");
  EXPECT_EQ(scored(e, "Answer: C"), "C");
  EXPECT_EQ(scored(e, "The best answer is **D**"), "D");
  EXPECT_EQ(scored(e, "The answer is B. No wait, the answer is C"), "C");  // the last one
  EXPECT_EQ(scored(e, "B. Paris"), "B");  // a letter that starts the text
  EXPECT_EQ(scored(e, " (A)"), "A");
  EXPECT_EQ(scored(e, "Because B is right"), std::nullopt);  // "Because": no letter stands alone at the start
  EXPECT_EQ(scored(e, "the answer is a dog"), std::nullopt);  // lowercase is a word, not a choice
  EXPECT_EQ(scored(e, "The answers are"), std::nullopt);
  EXPECT_EQ(reference_answer(ExtractRule::choice_letter, "(B)"), "B");
  EXPECT_EQ(reference_answer(ExtractRule::choice_letter, "b"), std::nullopt);
}

TEST(Extract, RegexTakesTheFirstMatchsFirstGroup) {
  EXPECT_EQ(scored(rule(ExtractRule::regex, "#### (\\-?[0-9.,]+)"), "so #### 42 and #### 7"), "42");
  EXPECT_EQ(scored(rule(ExtractRule::regex, "[0-9]+"), "a 12 b 34"), "12");  // no group: the whole match
  EXPECT_EQ(scored(rule(ExtractRule::regex, "(x)?([0-9]+)"), "7"), "7");      // group 1 unmatched: the whole match
  EXPECT_EQ(scored(rule(ExtractRule::regex, "#### ([0-9]+)"), "nothing"), std::nullopt);
}

TEST(Extract, ARegexThatBacktracksWildlyFailsFast) {
  // Exponential backtracking at the first position, and then at every line of a text of short
  // lines: each search is bounded, and the item is an extraction failure that says why.
  const Extraction e = rule(ExtractRule::regex, "(.*)*x$");
  std::string one_line(10000, 'a'), short_lines;
  one_line[5000] = 'x';
  while (short_lines.size() < 10000) short_lines += "aaaaaaaaaaaaaaaaaa\n";
  short_lines += 'x';
  for (const std::string& text : {one_line, short_lines}) {
    const auto start = std::chrono::steady_clock::now();
    std::string error;
    EXPECT_EQ(extract_answer(e, text, &error), std::nullopt);
    EXPECT_NE(error.find("backtracked past its limits"), std::string::npos) << error;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
  }
  std::string error;
  EXPECT_EQ(extract_answer(e, "aax", &error), "");  // small texts still match: the last empty (.*)
  EXPECT_EQ(error, "");
}

TEST(Extract, ABadPatternSaysWhereItBreaks) {
  std::string error;
  EXPECT_EQ(Regex::compile("(a", &error), nullptr);
  EXPECT_NE(error.find("missing closing parenthesis at offset 2"), std::string::npos) << error;
}

TEST(Extract, RuleNames) {
  for (ExtractRule r : {ExtractRule::exact, ExtractRule::last_number, ExtractRule::boxed, ExtractRule::choice_letter,
                        ExtractRule::regex})
    EXPECT_EQ(extract_rule_from_name(extract_rule_name(r)), r);
  EXPECT_EQ(extract_rule_from_name("number"), std::nullopt);
}

}  // namespace
}  // namespace herd_cli::eval
