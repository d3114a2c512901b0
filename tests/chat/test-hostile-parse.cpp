// The tool-call parser against hostile model output: megabytes of brackets and broken calls parse
// in linear time, at once and token by token; calls nested far too deep stay text with a
// diagnostic; and the streaming detector, which resumes where its last parse left off, agrees
// with the one-shot parse on every split of every reference case and of random mixtures.
#include <chrono>
#include <functional>
#include <random>

#include "chat-fixture.h"
#include "chat/tool-parse.h"

namespace {

using herd_test::Json;
const std::vector<std::string> kBuiltins = {"brave_search", "wolfram_alpha", "photogen"};

std::string repeat(std::string_view piece, size_t bytes) {
  std::string out;
  out.reserve(bytes + piece.size());
  while (out.size() < bytes) out += piece;
  return out;
}

// Completions built to make a parser that scans again from every bracket or marker quadratic.
std::vector<std::pair<std::string, std::function<std::string(size_t)>>> hostile_completions() {
  return {
      {"all {", [](size_t n) { return repeat("{", n); }},
      {"all {\"", [](size_t n) { return repeat("{\"", n); }},
      {"all [", [](size_t n) { return repeat("[", n); }},
      {"<function= repeated", [](size_t n) { return repeat("<function=", n); }},
      {"<function=f>{ repeated", [](size_t n) { return repeat("<function=f>{\"a\": ", n); }},
      {"python tag and brackets", [](size_t n) { return "<|python_tag|>" + repeat("{[", n); }},
      {"python tags", [](size_t n) { return repeat("<|python_tag|>{", n); }},
      {"nested objects that are not calls",
       [](size_t n) { return repeat("{\"a\": 1, \"b\": ", n / 2) + repeat("}", n / 2); }},
      {"wide nested objects",
       [](size_t n) {
         std::string pad(n / 40, 'x');
         return repeat("{\"type\": \"x\", \"name\": \"f\", \"parameters\": {}, \"pad\": \"" + pad + "\", \"in\": ", n / 2) +
                repeat("}", 40);
       }},
      {"unclosed calls mentioning name", [](size_t n) { return repeat("{\"x", n - 8) + "\"name\""; }},
      {"calls and separators", [](size_t n) { return repeat("{\"name\": \"f\", \"parameters\": {}}; ", n); }},
      {"list of calls", [](size_t n) { return "[" + repeat("f(a=[1, {'b': 'c'}]), ", n); }},
      {"prose", [](size_t n) { return repeat("Plain words, {a set}, [1] and <tags>. ", n); }},
  };
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

constexpr size_t kMiB = 1 << 20;
// Linear parsing takes tens of milliseconds here (a few times that under a sanitizer, or on a
// loaded machine); scanning again from every bracket took minutes on the first of these.
constexpr double kSecondsPerMiB = 5.0;

TEST(HostileToolParse, OneMebibyteParsesInLinearTime) {
  for (const auto& [name, make] : hostile_completions()) {
    const std::string text = make(kMiB);
    const auto t0 = std::chrono::steady_clock::now();
    const herd::chat::Parsed p = herd::chat::parse_completion(text, kBuiltins, /*final=*/true);
    const double s = seconds_since(t0);
    EXPECT_LT(s, kSecondsPerMiB) << name;
    EXPECT_LE(p.diagnostics.size(), 17u) << name;  // the first few and a count of the rest
    size_t call_bytes = 0;
    for (const herd::chat::ToolCall& c : p.calls) call_bytes += c.raw.size();
    EXPECT_LE(p.content.size() + call_bytes, text.size()) << name;
  }
}

TEST(HostileToolParse, StreamingOneMebibyteIsLinearToo) {
  for (const auto& [name, make] : hostile_completions()) {
    const std::string text = make(kMiB);
    const auto t0 = std::chrono::steady_clock::now();
    herd::chat::ToolCallStream stream(kBuiltins);
    std::string visible;
    for (size_t pos = 0; pos < text.size(); pos += 4) stream.push(std::string_view(text).substr(pos, 4), visible);
    const herd::chat::Parsed streamed = stream.finish(visible);
    EXPECT_LT(seconds_since(t0), 2 * kSecondsPerMiB) << name;
    const herd::chat::Parsed once = herd::chat::parse_completion(text, kBuiltins, /*final=*/true);
    EXPECT_TRUE(visible == once.content) << name;
    EXPECT_EQ(streamed.calls.size(), once.calls.size()) << name;
  }
}

// Nested 50,000 deep: the parsers used to recurse once per level and overflow the stack.
TEST(HostileToolParse, TooDeepCallsStayTextWithADiagnostic) {
  const size_t n = 50000;
  const std::string deep_object = repeat("{\"a\": ", 6 * n) + "1" + std::string(n, '}');
  const std::string deep_list = std::string(n, '[') + std::string(n, ']');
  for (const std::string& text : {
           "{\"name\": \"f\", \"parameters\": " + deep_object + "}",
           "<|python_tag|>{\"name\": \"f\", \"parameters\": " + deep_object + "}<|eom_id|>",
           "<function=f>" + deep_object + "</function>",
           "<|python_tag|>brave_search.call(query=" + deep_list + ")<|eom_id|>",
           "[f(a=" + deep_list + ")]",
       }) {
    const herd::ParsedCompletion p = herd::parse_tool_calls(text);
    EXPECT_TRUE(p.tool_calls.empty()) << text.substr(0, 40);
    EXPECT_EQ(p.content, text.ends_with("<|eom_id|>") ? text.substr(0, text.size() - 10) : text);
    EXPECT_FALSE(p.diagnostics.empty()) << text.substr(0, 40);
    herd::ToolCallStream stream;
    std::string visible;
    for (size_t pos = 0; pos < text.size(); pos += 3) stream.push(std::string_view(text).substr(pos, 3), &visible);
    const herd::ParsedCompletion streamed = stream.finish(&visible);
    EXPECT_TRUE(visible == p.content) << text.substr(0, 40);
    EXPECT_TRUE(streamed.tool_calls.empty());
  }
  // Which limit was hit is said.
  const herd::ParsedCompletion p = herd::parse_tool_calls("{\"name\": \"f\", \"parameters\": " + deep_object + "}");
  EXPECT_NE(p.diagnostics[0].find("deeper than 128 levels"), std::string::npos) << p.diagnostics[0];
  // As deep as the limit allows is still a call.
  const std::string ok = "{\"name\": \"f\", \"parameters\": " + repeat("{\"a\": ", 6 * 126) + "1" + std::string(126, '}') + "}";
  ASSERT_EQ(herd::parse_tool_calls(ok).tool_calls.size(), 1u);
}

TEST(HostileToolParse, CallsInsideOtherJsonAreFoundAFewLevelsDeep) {
  const std::string call = R"({"name": "f", "parameters": {"x": 1}})";
  const auto wrap = [&](int levels) { return repeat(R"({"w": )", 6 * levels) + call + std::string(levels, '}'); };
  herd::ParsedCompletion p = herd::parse_tool_calls(wrap(2));
  ASSERT_EQ(p.tool_calls.size(), 1u);
  EXPECT_EQ(p.tool_calls[0].raw, call);
  EXPECT_EQ(p.content, repeat(R"({"w": )", 12) + "}}");
  p = herd::parse_tool_calls(wrap(12));
  EXPECT_TRUE(p.tool_calls.empty());
  EXPECT_EQ(p.content, wrap(12));
  ASSERT_FALSE(p.diagnostics.empty());
  EXPECT_NE(p.diagnostics[0].find("not searched for calls"), std::string::npos) << p.diagnostics[0];
}

TEST(HostileToolParse, ThousandsOfBrokenCallsGetAFewDiagnostics) {
  const herd::ParsedCompletion p = herd::parse_tool_calls(repeat("<function=>x ", 13 * 5000));
  ASSERT_EQ(p.diagnostics.size(), 17u);
  EXPECT_EQ(p.diagnostics.back(), "and 4984 more like these");
}

// Feeds text in pieces of 1..7 bytes chosen by `rng`; the visible text and the result must equal
// the one-shot parse.
void expect_stream_matches(const std::string& text, std::mt19937& rng) {
  const herd::chat::Parsed once = herd::chat::parse_completion(text, kBuiltins, /*final=*/true);
  herd::chat::ToolCallStream stream(kBuiltins);
  std::string visible;
  for (size_t pos = 0; pos < text.size();) {
    const size_t n = 1 + rng() % 7;
    stream.push(std::string_view(text).substr(pos, n), visible);
    pos += n;
  }
  const herd::chat::Parsed streamed = stream.finish(visible);
  EXPECT_EQ(visible, once.content) << text;
  EXPECT_EQ(streamed.content, once.content) << text;
  ASSERT_EQ(streamed.calls.size(), once.calls.size()) << text;
  for (size_t i = 0; i < once.calls.size(); ++i) EXPECT_EQ(streamed.calls[i].raw, once.calls[i].raw) << text;
  EXPECT_EQ(streamed.diagnostics, once.diagnostics) << text;
}

TEST(HostileToolParse, StreamingAgreesOnEveryReferenceCase) {
  std::mt19937 rng(7);
  for (const Json& row : herd_test::read_jsonl("tool_call_parsing.jsonl"))
    for (int split = 0; split < 8; ++split) expect_stream_matches(row["input"].get<std::string>(), rng);
}

// Random mixtures of the pieces calls are made of, so that resuming is tried at every kind of
// boundary (after calls, separators, objects that are not calls, cut-off markers).
TEST(HostileToolParse, StreamingAgreesOnRandomMixtures) {
  const std::vector<std::string> pieces = {
      "{", "}", "{\"", "\"", "\\", "name", "\"name\": \"f\"", ", \"parameters\": {}", "{\"a\": 1}", " ", ";", "\n",
      "text", "<function=f>", "</function>", "<function=", ">", "[", "]", "f(a=1)", ", ", "<|python_tag|>",
      "brave_search.call(query=\"x\")", "<|eom_id|>", "<|eot_id|>", "<|", "{\"name\": \"g\", \"arguments\": {\"x\": [1]}}",
      "'", "{'q': 'it''s'}", "(", ")"};
  std::mt19937 rng(11);
  for (int i = 0; i < 3000; ++i) {
    std::string text;
    const int n = 1 + int(rng() % 24);
    for (int k = 0; k < n; ++k) text += pieces[rng() % pieces.size()];
    expect_stream_matches(text, rng);
    if (HasFailure()) break;  // one counterexample is enough to read
  }
}

}  // namespace
