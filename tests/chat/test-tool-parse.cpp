// The tool-call parser against tests/data/chat/tool_call_parsing.jsonl (81 cases from the
// llama-models, llama-stack and vLLM parsers), every format docs/tool-calling.md lists, and the
// round trip. Where a reference parser's answer goes against herd's policy (docs/tool-calling.md:
// text around a call stays content; several calls are allowed; nothing throws), the row is listed
// in kDifferences with the reason and herd's answer.
#include <map>

#include "chat-fixture.h"

namespace {

using herd_test::Json;

struct Expected {
  Json calls = Json::array();  // [[name, arguments], ...]
  std::optional<std::string> content = std::nullopt;  // unset: the reference does not say
  std::optional<std::string> end = std::nullopt;
};

struct Difference {
  const char* reason;
  Expected herd;
};

Json call(const std::string& name, Json args) { return Json::array({name, std::move(args)}); }

const std::map<int, Difference>& differences() {
  static const std::map<int, Difference> d = {
      {21, {"llama-stack returns only the first call; herd returns every call",
            {Json::array({call("search", {{"query", "python programming"}}), call("get_time", {{"timezone", "UTC"}})}),
             ""}}},
      {34, {"vLLM drops the text around a call (content null); herd keeps it",
            {Json::array({call("getOpenIncidentsTool", Json::object())}),
             "Here is the result:  Would you like to know more?"}}},
      {41, {"vLLM drops the text around the calls; herd keeps it",
            {Json::array({call("searchTool", {{"query", "test1"}}), call("getOpenIncidentsTool", Json::object()),
                          call("searchTool", {{"query", "test2"}})}),
             "Here are the results:  Would you like to know more?"}}},
      {51, {"llama-models finds NAME.call(...) anywhere in free text; herd reads a built-in call only after "
            "<|python_tag|>, which the model always writes before one, so prose that mentions a call stays prose",
            {Json::array(), "Let me look that up. brave_search.call(query=\"x\") and wolfram_alpha.call(query=\"y\")"}}},
      {58, {"llama-models' regex stops at the first '}' and fails on nested objects; herd parses real JSON",
            {Json::array({call("f", {{"a", {{"b", 1}}}})}), ""}}},
      {60, {"llama-models turns every ' into \" and breaks on apostrophes in values; herd parses real JSON",
            {Json::array({call("f", {{"q", "it's"}})}), ""}}},
      {61, {"llama-models drops the text before a call; herd keeps it",
            {Json::array({call("get_time", {{"tz", "UTC"}})}), "Sure, calling now: "}}},
      {62, {"llama-models raises KeyError on a call without parameters; herd never throws: text plus a diagnostic",
            {Json::array(), "{\"name\": \"f\"}"}}},
      {65, {"llama-models returns only the first call of a list; herd returns every call",
            {Json::array({call("get_weather", {{"city", "San Francisco"}, {"metric", "celsius"}}),
                          call("get_weather", {{"city", "Seattle"}})}),
             ""}}},
      {66, {"llama-models raises ValueError on a non-literal argument; herd keeps the text (as vLLM does, row 80)",
            {Json::array(), "[f(x=a)]"}}},
      {69, {"the older vLLM regex fails beyond two levels of nesting; herd follows the newer vLLM (row 68)",
            {Json::array({call("f", {{"a", {{"b", 1}}}})}), ""}}},
      {70, {"the newer vLLM rejects every call once one object is not a call; herd takes the call and keeps the "
            "other object as text",
            {Json::array({call("f", Json::object())}), "{\"city\": \"Paris\"} then "}}},
      {71, {"the older vLLM finds no call here; as row 70",
            {Json::array({call("f", Json::object())}), "{\"city\": \"Paris\"} then "}}},
  };
  return d;
}

const char* end_of(const std::string& stop_reason) {
  return stop_reason == "end_of_message" ? "eom" : "eot";
}

// The reference's answer in one shape, whatever parser produced it.
Expected reference_answer(const Json& row) {
  const std::string parser = row["parser"];
  const std::string input = row["input"];
  const Json& e = row["expected"];
  Expected x;
  if (parser == "llama_models.ToolUtils.maybe_extract_custom_tool_call") {
    x.calls.push_back(call(e["name"], e["arguments"]));
  } else if (parser == "llama_models.is_valid_python_list") {
    // Only whether it is a list of calls; the calls themselves are checked by the next parser.
    if (e.get<bool>()) x.calls = nullptr;
  } else if (parser == "llama_models.parse_python_list_for_function_calls") {
    for (const Json& c : e) x.calls.push_back(call(c[0], c[1]));
    x.content = "";
  } else if (parser == "llama_stack.ToolUtils.maybe_extract_custom_tool_call") {
    if (!e.is_null()) x.calls.push_back(call(e[0], e[1]));
  } else if (parser.starts_with("vllm.")) {
    if (e["tools_called"].get<bool>())
      for (const Json& c : e["tool_calls"]) x.calls.push_back(call(c["name"], Json::parse(c["arguments"].get<std::string>())));
    x.content = e["content"].is_null() ? "" : e["content"].get<std::string>();  // null: no content
  } else {
    EXPECT_EQ(parser, "llama_models.ChatFormat.decode_assistant_message_from_content");
    for (const Json& c : e["tool_calls"]) x.calls.push_back(call(c["tool_name"], c["arguments"]));
    x.content = e["content"];
    // llama-models says end_of_turn when no marker ends the text; herd says length (docs/cli.md).
    if (input.ends_with("<|eom_id|>") || input.ends_with("<|eot_id|>")) x.end = end_of(e["stop_reason"]);
  }
  return x;
}

Json calls_of(const herd::ParsedCompletion& p) {
  Json out = Json::array();
  for (const herd::ToolCall& c : p.tool_calls) out.push_back(call(c.name, herd_test::args_of(c)));
  return out;
}

TEST(ToolParse, ReferenceCases) {
  const std::vector<Json> rows = herd_test::read_jsonl("tool_call_parsing.jsonl");
  ASSERT_EQ(rows.size(), 81u);
  int n_agree = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string input = rows[i]["input"];
    const herd::ParsedCompletion got = herd::parse_tool_calls(input);
    const auto diff = differences().find(int(i));
    const Expected want = diff != differences().end() ? diff->second.herd : reference_answer(rows[i]);
    SCOPED_TRACE("row " + std::to_string(i) + ": " + input);
    if (diff == differences().end()) {
      ASSERT_FALSE(rows[i]["expected"].contains("error")) << "a reference exception must be listed as a difference";
      ++n_agree;
    }
    if (want.calls.is_null()) {
      EXPECT_FALSE(got.tool_calls.empty());
    } else {
      EXPECT_EQ(calls_of(got), want.calls);
    }
    if (want.content) {
      EXPECT_EQ(got.content, *want.content);
    }
    if (want.end) {
      EXPECT_EQ(herd::completion_end_name(got.end), *want.end);
    }
    // Nothing is lost: every byte is content or inside a call.
    for (const herd::ToolCall& c : got.tool_calls) EXPECT_NE(input.find(c.raw), std::string::npos) << c.raw;
  }
  EXPECT_EQ(n_agree, 81 - int(differences().size()));
}

herd::ParsedCompletion parse(const std::string& text, const herd::ToolParseOptions& o = {}) {
  return herd::parse_tool_calls(text, o);
}

TEST(ToolParse, BuiltinCallsAfterPythonTag) {
  auto p = parse(R"(<|python_tag|>brave_search.call(query="say \"hi\" to \\ me")<|eom_id|>)");
  ASSERT_EQ(p.tool_calls.size(), 1u);
  EXPECT_EQ(p.tool_calls[0].name, "brave_search");
  EXPECT_EQ(herd_test::args_of(p.tool_calls[0]), Json({{"query", "say \"hi\" to \\ me"}}));
  EXPECT_EQ(p.tool_calls[0].raw, R"(brave_search.call(query="say \"hi\" to \\ me"))");
  EXPECT_EQ(p.end, herd::CompletionEnd::eom);
  EXPECT_EQ(p.content, "");

  p = parse("<|python_tag|>wolfram_alpha.call(query='solve x^2 = 4')<|eom_id|>");
  ASSERT_EQ(p.tool_calls.size(), 1u);
  EXPECT_EQ(herd_test::args_of(p.tool_calls[0]), Json({{"query", "solve x^2 = 4"}}));
}

TEST(ToolParse, CodeInterpreter) {
  const std::string code = "import math\nprint(math.sqrt(2))";
  auto p = parse("<|python_tag|>" + code + "<|eom_id|>");
  ASSERT_EQ(p.tool_calls.size(), 1u);
  EXPECT_EQ(p.tool_calls[0].name, "code_interpreter");
  EXPECT_EQ(herd_test::args_of(p.tool_calls[0]), Json({{"code", code}}));
  // A name that is not a built-in tool is code calling it.
  herd::ToolParseOptions only_search;
  only_search.builtin_tools = {"brave_search"};
  p = parse("<|python_tag|>wolfram_alpha.call(query=\"x\")<|eom_id|>", only_search);
  ASSERT_EQ(p.tool_calls.size(), 1u);
  EXPECT_EQ(p.tool_calls[0].name, "code_interpreter");
}

TEST(ToolParse, JsonCalls) {
  auto p = parse(R"(<|python_tag|>{"name": "f", "arguments": {"x": [1, {"y": null}]}}<|eom_id|>)");
  ASSERT_EQ(p.tool_calls.size(), 1u);
  EXPECT_EQ(herd_test::args_of(p.tool_calls[0]), Json::parse(R"({"x": [1, {"y": null}]})"));
  p = parse(R"({"type": "function", "name": "g", "parameters": {"s": "a}b{c"}}<|eot_id|>)");
  ASSERT_EQ(p.tool_calls.size(), 1u);
  EXPECT_EQ(herd_test::args_of(p.tool_calls[0]), Json({{"s", "a}b{c"}}));
  EXPECT_EQ(p.end, herd::CompletionEnd::eot);
}

TEST(ToolParse, FunctionTagsNestedApostrophesAndSeveral) {
  auto p = parse(R"(<function=a>{"q": "it's", "o": {"p": {"r": [1]}}}</function><function=b>{}</function><|eot_id|>)");
  ASSERT_EQ(p.tool_calls.size(), 2u);
  EXPECT_EQ(herd_test::args_of(p.tool_calls[0]), Json::parse(R"({"q": "it's", "o": {"p": {"r": [1]}}})"));
  EXPECT_EQ(p.tool_calls[1].name, "b");
  EXPECT_EQ(p.content, "");
}

TEST(ToolParse, TextBeforeAndAfterStays) {
  auto p = parse(R"(Let me check. {"name": "f", "parameters": {"a": 1}} Done.)");
  ASSERT_EQ(p.tool_calls.size(), 1u);
  EXPECT_EQ(p.content, "Let me check.  Done.");
  p = parse("Searching.<|python_tag|>brave_search.call(query=\"x\")<|eom_id|>");
  ASSERT_EQ(p.tool_calls.size(), 1u);
  EXPECT_EQ(p.content, "Searching.");
}

// Malformed or cut-off calls: every byte stays content, with a diagnostic, and nothing throws.
TEST(ToolParse, MalformedAndTruncatedKeepEveryByte) {
  for (const std::string& text : {
           std::string("<|python_tag|>brave_search.call(query=\"latest pri"),
           std::string("<|python_tag|>brave_search.call(query=x)<|eom_id|>"),
           std::string(R"({"name": "f", "parameters": {"a": 1})"),
           std::string(R"(<function=f>{"a": 1)"),
           std::string(R"(<function=f>{"a": nope}</function>)"),
           std::string("<|python_tag|>import os\nos.listdir("),  // code cut off by the length limit
           std::string("[get_weather(city='SF'"),
       }) {
    const herd::ParsedCompletion p = parse(text);
    EXPECT_TRUE(p.tool_calls.empty()) << text;
    EXPECT_EQ(p.content, text.ends_with("<|eom_id|>") ? text.substr(0, text.size() - 10) : text);
    EXPECT_FALSE(p.diagnostics.empty()) << text;
  }
}

TEST(ToolParse, EndMarkers) {
  EXPECT_EQ(parse("hi<|eom_id|>").end, herd::CompletionEnd::eom);
  EXPECT_EQ(parse("hi<|eot_id|>").end, herd::CompletionEnd::eot);
  EXPECT_EQ(parse("hi").end, herd::CompletionEnd::length);
  EXPECT_EQ(parse("hi<|eot_id|>").content, "hi");
}

// parse(render(call)) == call: one call per message with JSON-object arguments, and built-in
// calls with string arguments (the template writes those unescaped, so they hold no '"' or '\').
TEST(ToolParse, RoundTripThroughTheTemplate) {
  struct Case {
    herd::ToolCall call;
    bool builtin;
  };
  const std::vector<Case> cases = {
      {{"get_weather", R"({"location": "Paris, France", "unit": "celsius"})", ""}, false},
      {{"deep", R"({"a": {"b": [1, 2.5, {"c": null}]}, "s": "it's \"quoted\" {x}", "t": true, "u": "ünï"})", ""}, false},
      {{"no_args", "{}", ""}, false},
      {{"brave_search", R"({"query": "current weather in Menlo Park, California"})", ""}, true},
      {{"wolfram_alpha", R"({"query": "solve x^2 - 5x + 6 = 0", "format": "plaintext"})", ""}, true},
  };
  for (const Case& c : cases) {
    herd::Conversation conv;
    conv.messages = {{"user", "q", false, {}}, {"assistant", "", false, {c.call}}};
    if (c.builtin) conv.builtin_tools = std::vector<std::string>{"brave_search", "wolfram_alpha"};
    conv.add_generation_prompt = false;
    std::string text;
    ASSERT_TRUE(herd::render_prompt(conv, &text)) << c.call.name;
    const std::string header = "<|start_header_id|>assistant<|end_header_id|>\n\n";
    const herd::ParsedCompletion p = parse(text.substr(text.rfind(header) + header.size()));
    ASSERT_EQ(p.tool_calls.size(), 1u) << text;
    EXPECT_EQ(p.tool_calls[0].name, c.call.name);
    EXPECT_EQ(herd_test::args_of(p.tool_calls[0]), Json::parse(c.call.arguments));
    EXPECT_EQ(p.content, "");
    EXPECT_EQ(p.end, c.builtin ? herd::CompletionEnd::eom : herd::CompletionEnd::eot);
  }
}

}  // namespace
