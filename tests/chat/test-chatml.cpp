// ChatML against tests/data/chat/chatml.jsonl: SmolLM2's template (with its default system turn)
// and the plain ChatML template, rendered by Jinja2 as transformers renders them
// (tests/reference/make_chatml_vectors.py). The format is detected from the template text.
#include "chat-fixture.h"
#include "chat/chat-format.h"
#include "common/check.h"

namespace {

using herd_test::Json;

TEST(ChatMl, EveryVectorIsByteIdentical) {
  const auto rows = herd_test::read_jsonl("chatml.jsonl");
  ASSERT_EQ(rows.size(), 18u);
  for (const Json& row : rows) {
    const herd::chat::ChatFormat f = herd::chat::detect_chat_format(row["template"].get<std::string>());
    ASSERT_EQ(f.kind, herd::chat::ChatFormat::Kind::chatml) << row["name"];
    EXPECT_EQ(f.default_system.has_value(), row["name"].get<std::string>().starts_with("smollm2")) << row["name"];
    const Json doc = {{"messages", row["messages"]}, {"add_generation_prompt", row["add_generation_prompt"]}};
    const herd::chat::Conversation c = herd::chat::conversation_from_json(herd::chat::Json::parse(doc.dump()));
    EXPECT_EQ(herd::chat::render_chat(f, c).text(), row["prompt"].get<std::string>()) << row["name"];
  }
}

TEST(ChatMl, DetectsTheFormatFromTheTemplate) {
  using Kind = herd::chat::ChatFormat::Kind;
  EXPECT_EQ(herd::chat::detect_chat_format("").kind, Kind::llama3);
  std::ifstream llama31(std::string(HERD_TEST_DATA) + "/chat/chat_template.jinja");
  const std::string official((std::istreambuf_iterator<char>(llama31)), {});
  ASSERT_FALSE(official.empty());
  EXPECT_EQ(herd::chat::detect_chat_format(official).kind, Kind::llama3);
  EXPECT_EQ(herd::chat::detect_chat_format("{{ '[INST] ' + message['content'] + ' [/INST]' }}").kind, Kind::unsupported);
  // Escaped newlines in the template's string literal are undone in the default system text.
  const auto f = herd::chat::detect_chat_format(
      "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nBe brief.<|im_end|>\\n' }}{% endif %}"
      "{{ '<|im_start|>' }}");
  EXPECT_EQ(f.default_system, "Be brief.");
}

TEST(ChatMl, RefusesToolsAndUnsupportedTemplates) {
  herd::chat::Conversation c;
  c.messages.push_back({"user", "hi", {}});
  c.tools = std::vector<herd::chat::Json>{herd::chat::Json::object()};
  const herd::chat::ChatFormat chatml{herd::chat::ChatFormat::Kind::chatml, std::nullopt};
  EXPECT_THROW(herd::chat::render_chat(chatml, c), herd::Error);
  c.tools.reset();
  EXPECT_THROW(herd::chat::render_chat({herd::chat::ChatFormat::Kind::unsupported, std::nullopt}, c), herd::Error);
}

}  // namespace
