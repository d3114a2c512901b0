// The progress line shared by long commands: its text when stderr is not a terminal.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "progress.h"

namespace herd_cli {
namespace {

std::string contents(std::FILE* f) {
  std::rewind(f);
  std::string s;
  for (int c; (c = std::fgetc(f)) != EOF;) s += char(c);
  return s;
}

TEST(Progress, Durations) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(65), "1:05");
  EXPECT_EQ(format_duration(3723), "1:02:03");
  EXPECT_EQ(format_duration(INFINITY), "?");
  EXPECT_EQ(format_duration(-1), "?");
}

TEST(Progress, PlainLinesWhenNotATerminal) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  Progress p("eval", 4, "items", f);
  p.update(0, 0);  // the first state is shown at once
  p.update(1, 10);  // then at most every line_interval_s: not yet
  p.finish();
  const std::string s = contents(f);
  EXPECT_EQ(s.find('\r'), std::string::npos);
  EXPECT_NE(s.find("eval [........................] 0/4 items"), std::string::npos) << s;
  EXPECT_NE(s.find("1/4 items"), std::string::npos) << s;  // finish() shows the last state
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 2) << s;
  std::fclose(f);
}

TEST(Progress, NoRepeatedLastLine) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  Progress p("perplexity", 1, "windows", f);
  p.update(1, 100);  // shown at once: it is the first state and the last
  p.finish();
  const std::string s = contents(f);
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 1) << s;
  std::fclose(f);
}

}  // namespace
}  // namespace herd_cli
