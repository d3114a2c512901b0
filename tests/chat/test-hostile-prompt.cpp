// Conversations built to break the renderer: JSON nested tens of thousands deep (which recursive
// copying and printing would overflow the stack on) is invalid input naming the limit, and JSON
// that indentation would blow up to gigabytes is refused before it is built.
#include <chrono>

#include "chat-fixture.h"
#include "chat/conversation.h"
#include "chat/py-json.h"
#include "common/check.h"

namespace {

std::string nested_object(size_t depth) {
  std::string s;
  for (size_t i = 0; i < depth; ++i) s += "{\"a\": ";
  return s + "1" + std::string(depth, '}');
}

herd::Status render(const std::string& conversation_json) {
  herd::Conversation c;
  if (herd::Status s = herd::parse_conversation(conversation_json, &c); !s) return s;
  std::string text;
  return herd::render_prompt(c, &text);
}

void expect_invalid(const herd::Status& s, const std::string& mentions) {
  EXPECT_EQ(s.code(), herd::Status::Code::invalid_input) << s.message();
  EXPECT_NE(s.message().find(mentions), std::string::npos) << s.message();
}

TEST(HostilePrompt, DeepConversationFilesAreInvalidInput) {
  const std::string deep = nested_object(20000);
  const std::string user = R"({"role": "user", "content": "hi"})";
  for (const std::string& doc : {
           R"({"messages": [)" + user + R"(], "tools": [)" + deep + "]}",
           R"({"messages": [)" + user + R"(, {"role": "tool", "content": )" + deep + "}]}",
           R"({"messages": [)" + user +
               R"(, {"role": "assistant", "tool_calls": [{"name": "f", "arguments": )" + deep + "}]}]}",
       })
    expect_invalid(render(doc), "conversation: JSON nested deeper than 128 levels");
}

TEST(HostilePrompt, DeepJsonInTheStructsIsInvalidInput) {
  const std::string deep = nested_object(50000);
  std::string text;
  herd::Conversation c;
  c.messages = {{"user", "hi", false, {}}};
  c.tools = std::vector<herd::ToolDefinition>{{deep}};
  expect_invalid(herd::render_prompt(c, &text), "tools[0]: JSON nested deeper than 128 levels");
  c.tools.reset();
  c.messages.push_back({"assistant", "", false, {{"f", deep, ""}}});
  expect_invalid(herd::render_prompt(c, &text), "messages[1].tool_calls[0].arguments: JSON nested deeper than 128");
  c.messages[1] = {"tool", deep, true, {}};
  expect_invalid(herd::render_prompt(c, &text), "messages[1].content: JSON nested deeper than 128");
}

// Values built in memory never reach the recursive writer past the limit either.
TEST(HostilePrompt, DeepValuesInMemoryAreRefused) {
  herd::chat::Json v = 1;
  for (int i = 0; i < 200; ++i) v = herd::chat::Json::array({std::move(v)});
  try {
    herd::chat::py_json_dumps(v);
    ADD_FAILURE() << "a value 200 deep was written";
  } catch (const herd::Error& e) {
    EXPECT_EQ(e.kind(), herd::ErrorKind::invalid_input);
    EXPECT_NE(std::string(e.what()).find("deeper than 128"), std::string::npos) << e.what();
  }
  EXPECT_THROW(herd::chat::conversation_from_json({{"messages", herd::chat::Json::array()}, {"tools", {v}}}), herd::Error);
}

// 120 levels of lists holding 150,000 zeros: 300 KB of JSON that json.dumps(indent=4) writes
// with ~480 spaces before every zero, 75 MB in all. The renderer stops at its 64 MiB cap.
TEST(HostilePrompt, IndentationCannotBlowUpThePrompt) {
  std::string zeros = "0";
  for (int i = 1; i < 150000; ++i) zeros += ",0";
  const std::string tool = R"({"x": )" + std::string(120, '[') + zeros + std::string(120, ']') + "}";
  const std::string doc = R"({"messages": [{"role": "user", "content": "hi"}], "tools": [)" + tool + "]}";
  ASSERT_LT(doc.size(), 400u << 10);
  const auto t0 = std::chrono::steady_clock::now();
  expect_invalid(render(doc), "tools[0]: with it, the prompt would be longer than 64 MiB");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);

  // The same shape a hundred times smaller renders (linear in the input, indentation included).
  std::string few = "0";
  for (int i = 1; i < 1500; ++i) few += ",0";
  std::string text;
  const std::string small = R"({"messages": [{"role": "user", "content": "hi"}], "tools": [{"x": )" +
                            std::string(120, '[') + few + std::string(120, ']') + "}]}";
  herd::Conversation c;
  ASSERT_TRUE(herd::parse_conversation(small, &c));
  ASSERT_TRUE(herd::render_prompt(c, &text));
  EXPECT_GT(text.size(), 1500u * 480);
}

}  // namespace
