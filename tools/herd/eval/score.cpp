#include "score.h"

#include "extract.h"

namespace herd_cli::eval {
namespace {

using nlohmann::ordered_json;

// The fields every line of --out starts with; resuming reads id, task, subject and metrics back.
ordered_json record_head(const TaskItem& item, const char* type, const std::string& prompt) {
  ordered_json r = {{"id", item.id}, {"task", item.task}, {"subject", item.subject}, {"type", type}, {"prompt", prompt}};
  return r;
}

ItemResult finish(const TaskItem& item, ordered_json record, bool correct, std::map<std::string, double> values) {
  record["correct"] = correct;
  record["metrics"] = values;
  if (!item.meta.empty()) record["meta"] = ordered_json::parse(item.meta);
  return {std::move(record), {item.task, item.subject, std::move(values)}};
}

// The end of a failing test's output is where the reason usually is.
std::string tail(const std::string& s, size_t n = 2000) { return s.size() <= n ? s : "..." + s.substr(s.size() - n); }

}  // namespace

ItemResult score_multiple_choice(const TaskItem& item, const MultipleChoice& mc, const std::vector<ChoiceScore>& scores) {
  std::vector<double> logprobs;
  std::vector<int> n_tokens;
  for (const ChoiceScore& s : scores) {
    logprobs.push_back(s.logprob);
    n_tokens.push_back(s.n_tokens);
  }
  const ChoicePrediction p = predict_choice(logprobs, mc.choices);
  ordered_json r = record_head(item, "multiple_choice", mc.context);
  r["choices"] = mc.choices;
  r["answer"] = mc.answer;
  r["logprobs"] = logprobs;
  r["n_tokens"] = n_tokens;
  r["pred"] = p.acc;
  r["pred_norm"] = p.acc_norm;
  return finish(item, std::move(r), p.acc == mc.answer,
                {{"acc", p.acc == mc.answer ? 1.0 : 0.0}, {"acc_norm", p.acc_norm == mc.answer ? 1.0 : 0.0}});
}

ItemResult score_generation(const TaskItem& item, const Generation& gen, const std::string& prompt,
                            const std::vector<std::string>& outputs, const TestRunner& run_test) {
  ordered_json r = record_head(item, "generation", prompt);
  if (gen.answer) r["answer"] = *gen.answer;
  r["extract"] = extract_rule_name(gen.extract.rule);
  ordered_json samples = ordered_json::array();

  if (gen.test) {
    int passed = 0;
    bool first_passed = false;
    for (size_t i = 0; i < outputs.size(); ++i) {
      ordered_json s = {{"output", outputs[i]}};
      // An explicit rule picks what is tested (a code block out of a chat reply); else the raw output.
      std::string why = "no answer was extracted";
      const std::optional<std::string> answer = gen.has_extract ? extract_answer(gen.extract, outputs[i], &why) : outputs[i];
      if (gen.has_extract) s["extracted"] = answer ? ordered_json(*answer) : ordered_json(nullptr);
      const TestOutcome t = answer ? run_test(*gen.test, *answer) : TestOutcome{false, why, ""};
      s["passed"] = t.passed;
      if (!t.passed) {
        s["test_error"] = t.error;
        s["test_output"] = tail(t.output);
      }
      passed += t.passed ? 1 : 0;
      if (i == 0) first_passed = t.passed;
      samples.push_back(std::move(s));
    }
    r["samples"] = std::move(samples);
    r["n_passed"] = passed;
    std::map<std::string, double> values;
    for (int k : gen.pass_at) values["pass@" + std::to_string(k)] = pass_at_k(int(outputs.size()), passed, k);
    return finish(item, std::move(r), first_passed, std::move(values));
  }

  const std::string reference = *reference_answer(gen.extract.rule, *gen.answer);  // checked at parse time
  std::vector<std::optional<std::string>> answers;
  for (const std::string& out : outputs) {
    std::string why;
    std::optional<std::string> a = extract_answer(gen.extract, out, &why);
    if (a) a = normalize_answer(gen.extract.rule, *a);
    samples.push_back({{"output", out}, {"extracted", a ? ordered_json(*a) : ordered_json(nullptr)}});
    if (!why.empty()) samples.back()["extract_error"] = why;
    answers.push_back(std::move(a));
  }
  const std::optional<std::string> voted = majority_vote(answers);
  r["samples"] = std::move(samples);
  r["reference"] = reference;
  r["extracted"] = voted ? ordered_json(*voted) : ordered_json(nullptr);
  const bool em = answers[0] && *answers[0] == reference, maj = voted && *voted == reference;
  std::map<std::string, double> values = {{"em", em ? 1.0 : 0.0}};
  if (outputs.size() > 1) values["maj@" + std::to_string(outputs.size())] = maj ? 1.0 : 0.0;
  return finish(item, std::move(r), maj, std::move(values));
}

}  // namespace herd_cli::eval
