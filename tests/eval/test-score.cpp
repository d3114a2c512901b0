// Item scoring: records and metrics of multiple-choice and generation items from given
// loglikelihoods and outputs, against values worked out by hand.
#include <gtest/gtest.h>

#include "parse-item.h"
#include "score.h"

namespace herd_cli::eval {
namespace {

TEST(Score, MultipleChoiceAccVersusAccNorm) {
  const TaskItem item = parse_ok(R"({"id": "q", "subject": "geo", "context": "The capital of France is",
                                    "choices": ["Paris", "a city in Europe"], "answer": 1})");
  // " Paris" at -5 wins on the sum; per character "a city in Europe" (16 chars) at -8 gives -0.5
  // against Paris's -1: acc_norm picks it.
  const ItemResult r = score_multiple_choice(item, std::get<MultipleChoice>(item.kind), {{-5.0, 1}, {-8.0, 4}});
  EXPECT_EQ(r.metrics.values, (std::map<std::string, double>{{"acc", 0.0}, {"acc_norm", 1.0}}));
  EXPECT_EQ(r.metrics.subject, "geo");
  EXPECT_EQ(r.record["pred"], 0);
  EXPECT_EQ(r.record["pred_norm"], 1);
  EXPECT_EQ(r.record["correct"], false);
  EXPECT_EQ(r.record["logprobs"], nlohmann::ordered_json::array({-5.0, -8.0}));
  EXPECT_EQ(r.record["n_tokens"], nlohmann::ordered_json::array({1, 4}));
  EXPECT_EQ(r.record["id"], "q");
  EXPECT_EQ(r.record["type"], "multiple_choice");
}

TestOutcome no_tests(const TestCommand&, const std::string&) {
  ADD_FAILURE() << "no test command should run";
  return {};
}

TEST(Score, ExactMatchAndMajorityWithATie) {
  const TaskItem item = parse_ok(R"j({"id": "g", "prompt": "p", "answer": "#### 5", "extract": "last_number", "n": 4})j");
  const Generation& g = std::get<Generation>(item.kind);
  // 5 and 7 get two votes each: the tie goes to 5, seen first. Sample 0 says 5: em = 1.
  ItemResult r = score_generation(item, g, "p", {"so 5", "it is 7", "7.0", "5.00"}, no_tests);
  EXPECT_EQ(r.metrics.values, (std::map<std::string, double>{{"em", 1.0}, {"maj@4", 1.0}}));
  EXPECT_EQ(r.record["extracted"], "5");
  EXPECT_EQ(r.record["reference"], "5");
  EXPECT_EQ(r.record["samples"][2]["extracted"], "7");
  // Sample 0 is wrong, the majority right: em 0, maj@4 1.
  r = score_generation(item, g, "p", {"7", "5", "5", "no idea"}, no_tests);
  EXPECT_EQ(r.metrics.values, (std::map<std::string, double>{{"em", 0.0}, {"maj@4", 1.0}}));
  EXPECT_EQ(r.record["samples"][3]["extracted"], nullptr);
  EXPECT_EQ(r.record["correct"], true);
  // Now 7 comes first in the tie.
  r = score_generation(item, g, "p", {"7", "5", "5", "7"}, no_tests);
  EXPECT_EQ(r.metrics.values, (std::map<std::string, double>{{"em", 0.0}, {"maj@4", 0.0}}));
}

TEST(Score, OneSampleHasEmOnly) {
  const TaskItem item = parse_ok(R"j({"id": "g", "prompt": "p", "answer": "(B)", "extract": "choice_letter"})j");
  const ItemResult r = score_generation(item, std::get<Generation>(item.kind), "p", {"The answer is B."}, no_tests);
  EXPECT_EQ(r.metrics.values, (std::map<std::string, double>{{"em", 1.0}}));
}

TEST(Score, PassAtKFromATestCommand) {
  const TaskItem item = parse_ok(R"({"id": "h", "prompt": "p", "n": 5, "pass_at": [1, 3],
                                    "test": {"command": "unused", "prefix": "def f():\n"}})");
  std::vector<std::string> tested;
  // A stand-in for the subprocess: an answer passes when it says "ok".
  const TestRunner fake = [&](const TestCommand& t, const std::string& answer) {
    EXPECT_EQ(t.prefix, "def f():\n");
    tested.push_back(answer);
    return TestOutcome{answer.find("ok") != std::string::npos, "the command exited with status 1", "Traceback"};
  };
  // 2 of 5 pass: pass@1 = 0.4, pass@3 = 0.9 (the HumanEval estimator). Sample 0 fails.
  const ItemResult r = score_generation(item, std::get<Generation>(item.kind), "p", {"  bad", "  ok", "x", "ok", "y"}, fake);
  EXPECT_EQ(tested, (std::vector<std::string>{"  bad", "  ok", "x", "ok", "y"}));  // raw outputs, indentation kept
  EXPECT_DOUBLE_EQ(r.metrics.values.at("pass@1"), 0.4);
  EXPECT_DOUBLE_EQ(r.metrics.values.at("pass@3"), 0.9);
  EXPECT_EQ(r.record["n_passed"], 2);
  EXPECT_EQ(r.record["correct"], false);
  EXPECT_EQ(r.record["samples"][0]["test_error"], "the command exited with status 1");
  EXPECT_FALSE(r.record["samples"][1].contains("test_error"));
}

TEST(Score, AnExtractRuleChoosesWhatIsTested) {
  const TaskItem item = parse_ok(R"({"id": "h", "prompt": "p", "n": 2, "extract": "regex",
                                    "pattern": "```python\\n([\\s\\S]*?)```", "test": {"command": "unused"}})");
  std::vector<std::string> tested;
  const TestRunner fake = [&](const TestCommand&, const std::string& answer) {
    tested.push_back(answer);
    return TestOutcome{true, "", ""};
  };
  const ItemResult r = score_generation(item, std::get<Generation>(item.kind), "p",
                                        {"Here:\n```python\nreturn 1\n```\n", "no code"}, fake);
  EXPECT_EQ(tested, std::vector<std::string>{"return 1\n"});  // nothing extracted from sample 1: it fails untested
  EXPECT_DOUBLE_EQ(r.metrics.values.at("pass@1"), 0.5);
  EXPECT_EQ(r.record["samples"][1]["test_error"], "no answer was extracted");
}

}  // namespace
}  // namespace herd_cli::eval
