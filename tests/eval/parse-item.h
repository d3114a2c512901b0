// One task-file line parsed as if it were line 1 of t.jsonl, for the tests that need an item.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "task-file.h"

namespace herd_cli::eval {

inline TaskItem parse_ok(const std::string& line) {
  TaskItem item;
  const herd::Status s = parse_task_line(line, "t.jsonl:1", "t", &item);
  EXPECT_TRUE(s) << s.message();
  return item;
}

}  // namespace herd_cli::eval
