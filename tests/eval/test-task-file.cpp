// Task-file parsing: defaults, the chat expansion, and one-line errors naming FILE:LINE and the field.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "parse-item.h"
#include "task-file.h"

namespace herd_cli::eval {
namespace {

// The error for one line, which must name the origin.
std::string error_of(const std::string& line) {
  TaskItem item;
  const herd::Status s = parse_task_line(line, "t.jsonl:7", "t", &item);
  EXPECT_FALSE(s);
  EXPECT_EQ(s.code(), herd::Status::Code::invalid_input);
  EXPECT_EQ(s.message().rfind("t.jsonl:7: ", 0), 0u) << s.message();
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
  return s.message();
}

TEST(TaskFile, MultipleChoiceWithDefaults) {
  const TaskItem item = parse_ok(R"({"id": 3, "context": "2 + 2 =", "choices": ["4", "5"], "answer": 0})");
  EXPECT_EQ(item.id, "3");  // integer ids become their text
  EXPECT_EQ(item.task, "t");
  EXPECT_EQ(item.subject, "");
  const auto& mc = std::get<MultipleChoice>(item.kind);
  EXPECT_EQ(mc.context, "2 + 2 =");
  EXPECT_EQ(mc.choices, (std::vector<std::string>{"4", "5"}));
  EXPECT_EQ(mc.delimiter, " ");
}

TEST(TaskFile, ChatMessagesExpandSystemAndFewShot) {
  const TaskItem item = parse_ok(
      R"({"id": "g", "task": "gsm", "subject": "s", "system": "Be brief.", "fewshot": [{"user": "1+1?", "assistant": "2"}],
          "messages": [{"role": "user", "content": "2+2?"}], "answer": 4, "extract": "last_number", "n": 4,
          "temperature": 0.7, "stop": ["\n\n"], "meta": {"source": "x"}})");
  EXPECT_EQ(item.task, "gsm");
  EXPECT_EQ(item.meta, R"({"source":"x"})");
  const auto& g = std::get<Generation>(item.kind);
  ASSERT_EQ(g.messages.size(), 4u);
  EXPECT_EQ(g.messages[0].role, "system");
  EXPECT_EQ(g.messages[1].content, "1+1?");
  EXPECT_EQ(g.messages[2].role, "assistant");
  EXPECT_EQ(g.messages[3].content, "2+2?");
  EXPECT_EQ(g.answer, "4");  // a number reference becomes its text
  EXPECT_EQ(g.n, 4);
  EXPECT_EQ(g.sampling.temperature, 0.7f);
  EXPECT_EQ(g.extract.rule, ExtractRule::last_number);
}

TEST(TaskFile, TestCommandDefaultsToPassAt1) {
  const TaskItem item = parse_ok(R"j({"id": "h", "prompt": "def f():", "n": 5, "test": {"command": "python3 -", "suffix": "\nf()"}})j");
  const auto& g = std::get<Generation>(item.kind);
  ASSERT_TRUE(g.test);
  EXPECT_EQ(g.test->command, "python3 -");
  EXPECT_EQ(g.test->suffix, "\nf()");
  EXPECT_EQ(g.pass_at, std::vector<int>{1});
  EXPECT_FALSE(g.answer);
}

TEST(TaskFile, ErrorsNameTheLineAndTheField) {
  EXPECT_NE(error_of("{not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("[1, 2]").find("JSON object"), std::string::npos);
  EXPECT_NE(error_of(R"({"context": "c", "choices": ["a", "b"], "answer": 0})").find("field 'id'"), std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "context": "c", "choices": ["a", "b"], "anwser": 0})").find("field 'answer'"),
            std::string::npos);  // the required field is reported before the stray one
  EXPECT_NE(error_of(R"({"id": 1, "context": "c", "choices": ["a", "b"], "answer": 0, "anwser": 0})").find("field 'anwser': unknown"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "context": "c", "choices": ["a", "b"], "answer": 2})").find("field 'answer': must be the index"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "context": "c", "choices": ["a"], "answer": 0})").find("field 'choices'"), std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "context": "c", "choices": ["a", ""], "answer": 0})").find("field 'choices'"), std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "context": "c", "choices": ["a", "b"], "answer": 0, "n": 2})").find("field 'n'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1})").find("needs choices"), std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "prompt": "p", "messages": [], "answer": "a"})").find("not both"), std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "prompt": "p", "system": "s", "answer": "a"})").find("field 'system'"), std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "prompt": "p"})").find("field 'answer': missing"), std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "prompt": "p", "answer": "x", "extract": "last_number"})").find("holds no answer"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "prompt": "p", "answer": "x", "extract": "number"})").find("field 'extract'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "prompt": "p", "answer": "x", "extract": "regex"})").find("field 'pattern': missing"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "prompt": "p", "answer": "x", "extract": "regex", "pattern": "(a"})").find("field 'pattern'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "prompt": "p", "answer": "x", "pattern": "a"})").find("field 'pattern'"), std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "prompt": "p", "n": 2, "test": {"command": "true"}, "pass_at": [3]})").find("field 'pass_at'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "prompt": "p", "test": {"command": "true"}, "answer": "x"})").find("field 'answer'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "prompt": "p", "test": {"cmd": "true"}})").find("field 'test'"), std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "prompt": "p", "answer": "x", "pass_at": [1]})").find("field 'pass_at'"), std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "messages": [{"role": "tool", "content": "x"}], "answer": "x"})").find("field 'messages'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1, "prompt": "p", "answer": "x", "temperature": "hot"})").find("field 'temperature'"),
            std::string::npos);
}

TEST(TaskFile, WholeFile) {
  const auto dir = std::filesystem::temp_directory_path() / "herd-test-task-file";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "easy.jsonl").string();
  {
    std::ofstream f(path);
    f << R"({"id": "a", "context": "c", "choices": ["x", "y"], "answer": 1})" << "\n\n"  // blank lines are fine
      << R"({"id": "b", "prompt": "p", "answer": "q"})" << "\n";
  }
  std::vector<TaskItem> items;
  ASSERT_TRUE(parse_task_file(path, &items));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].task, "easy");  // the file's name without .jsonl
  EXPECT_EQ(items[1].origin, path + ":3");
  {
    std::ofstream f(path, std::ios::app);
    f << R"({"id": "a", "prompt": "p", "answer": "q"})" << "\n";
  }
  items.clear();
  const herd::Status s = parse_task_file(path, &items);
  EXPECT_EQ(s.message(), path + ":4: field 'id': 'a' is already used on line 1 (ids must be unique within a task)");
  items.clear();
  EXPECT_NE(parse_task_file((dir / "missing.jsonl").string(), &items).message().find("cannot open"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(TaskFile, TheExamplesParse) {
  size_t n_files = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(HERD_SOURCE_DIR) + "/examples/eval")) {
    if (e.path().extension() != ".jsonl") continue;
    std::vector<TaskItem> items;
    const herd::Status s = parse_task_file(e.path().string(), &items);
    EXPECT_TRUE(s) << s.message();
    ++n_files;
  }
  EXPECT_GE(n_files, 6u);
}

}  // namespace
}  // namespace herd_cli::eval
