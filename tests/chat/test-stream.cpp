// The streaming detector fed token by token, as a chat UI sees a completion: the visible text
// never holds call text, and visible + finish() equals the one-shot parse.
#include "chat-fixture.h"

namespace {

struct Fed {
  std::string visible;
  bool ever_held = false;
  herd::ParsedCompletion result;
};

// Tokenizes the completion (special-token text as special ids, as the model emits them) and
// feeds each id's text through the streaming detokenizer and the detector.
Fed feed_by_tokens(const std::string& completion) {
  const herd::Tokenizer& tok = herd_test::llama3();
  std::vector<int32_t> ids;
  EXPECT_TRUE(tok.encode(completion, true, false, &ids));
  herd::TokenStream detok(tok);
  herd::ToolCallStream stream;
  Fed f;
  for (int32_t id : ids) {
    std::string delta;
    EXPECT_TRUE(detok.push(id, &delta));
    stream.push(delta, &f.visible);
    f.ever_held |= stream.maybe_tool_call();
  }
  std::string rest;
  detok.flush(&rest);
  stream.push(rest, &f.visible);
  f.result = stream.finish(&f.visible);
  return f;
}

TEST(ToolCallStream, CallsNeverReachTheScreen) {
  for (const std::string& completion : {
           std::string("<|python_tag|>brave_search.call(query=\"latest price of 1oz gold\")<|eom_id|>"),
           std::string("<|python_tag|>def is_prime(n):\n    return n > 1<|eom_id|>"),
           std::string(R"({"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>)"),
           std::string(R"(Let me check. {"name": "f", "parameters": {"a": {"b": 1}}} Done.<|eot_id|>)"),
           std::string(R"(Sure: <function=trending_songs>{"n": 10, "q": "it's"}</function><|eot_id|>)"),
           std::string(R"({"name": "a", "parameters": {}}; {"name": "b", "parameters": {"x": 1}}<|eot_id|>)"),
           std::string("[get_weather(city='San Francisco'), get_time(tz=\"UTC\")]<|eot_id|>"),
       }) {
    const Fed f = feed_by_tokens(completion);
    const herd::ParsedCompletion once = herd::parse_tool_calls(completion);
    EXPECT_TRUE(f.ever_held) << completion;
    EXPECT_EQ(f.visible, once.content) << completion;
    EXPECT_EQ(f.result.content, once.content);
    ASSERT_EQ(f.result.tool_calls.size(), once.tool_calls.size()) << completion;
    for (size_t i = 0; i < once.tool_calls.size(); ++i) {
      EXPECT_EQ(f.result.tool_calls[i].raw, once.tool_calls[i].raw);
      EXPECT_EQ(f.result.tool_calls[i].arguments, once.tool_calls[i].arguments);
    }
    for (const char* marker : {"<|", "{\"name\"", "<function=", "get_weather("})
      EXPECT_EQ(f.visible.find(marker), std::string::npos) << completion << " showed " << f.visible;
  }
}

// Plain prose, and text that only looks like the start of a call, is shown in full.
TEST(ToolCallStream, ProseFlowsThrough) {
  for (const std::string& completion : {
           std::string("The answer is 4.<|eot_id|>"),
           std::string("Use a dict like {x: 1} or a set {1, 2}. [1] is a citation.<|eot_id|>"),
           std::string(R"(JSON {"city": "Paris"} is data, not a call.)"),
           std::string("Trailing less-than <"),
           std::string("[get_weather(city='SF')] is how you'd write it<|eot_id|>"),
       }) {
    const Fed f = feed_by_tokens(completion);
    const herd::ParsedCompletion once = herd::parse_tool_calls(completion);
    EXPECT_TRUE(once.tool_calls.empty()) << completion;
    EXPECT_EQ(f.visible, once.content) << completion;
  }
}

// Text before a call is shown while the call is still being generated.
TEST(ToolCallStream, TextBeforeACallIsShownEarly) {
  herd::ToolCallStream stream;
  std::string visible;
  stream.push("Let me look. ", &visible);
  stream.push("{\"na", &visible);
  EXPECT_EQ(visible, "Let me look. ");
  EXPECT_TRUE(stream.maybe_tool_call());
  stream.push("me\": \"f\", \"parameters\": {}}", &visible);
  const herd::ParsedCompletion p = stream.finish(&visible);
  EXPECT_EQ(visible, "Let me look. ");
  ASSERT_EQ(p.tool_calls.size(), 1u);
}

}  // namespace
