// Stop strings across token boundaries, on hand-written delta sequences.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/check.h"
#include "sampling/stop-strings.h"

namespace herd {
namespace {

// Feeds `deltas` one by one and checks what each returned: `emitted[i]` as text, and the hit
// (stop index) on the delta where it happens.
void expect_steps(StopStringMatcher& m, const std::vector<std::string>& deltas,
                  const std::vector<std::string>& emitted, int hit_at = -1, size_t hit_stop = 0) {
  ASSERT_EQ(deltas.size(), emitted.size());
  for (size_t i = 0; i < deltas.size(); ++i) {
    const StopStep step = m.feed(deltas[i]);
    EXPECT_EQ(step.text, emitted[i]) << "delta " << i;
    if (int(i) == hit_at) {
      ASSERT_TRUE(step.stop.has_value()) << "delta " << i;
      EXPECT_EQ(*step.stop, hit_stop);
    } else {
      EXPECT_FALSE(step.stop.has_value()) << "delta " << i;
    }
  }
}

TEST(StopStrings, SplitAcrossTwoDeltas) {
  StopStringMatcher m({"</s>"});
  expect_steps(m, {"Hello wor", "ld</", "s> ignored"}, {"Hello wor", "ld", ""}, 2);
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.feed("more").text, "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopStrings, SplitAcrossThreeDeltasWithTextBefore) {
  StopStringMatcher m({"###"});
  expect_steps(m, {"a #", "#", "# b"}, {"a ", "", ""}, 2);
  StopStringMatcher n({"STOP"});
  expect_steps(n, {"xS", "T", "OP"}, {"x", "", ""}, 2);
}

TEST(StopStrings, TextBeforeTheStopInTheSameDeltaIsReturned) {
  StopStringMatcher m({"</s>"});
  expect_steps(m, {"one ", "two</s>three"}, {"one ", "two"}, 1);
}

TEST(StopStrings, MultipleStopsEarliestWins) {
  StopStringMatcher m({"\n\n", "User:"});
  // "Us" could start "User:" and is held; "\n" alone before it cannot start anything any more.
  expect_steps(m, {"Hi\nUs", "er: x"}, {"Hi\n", ""}, 1, 1);

  StopStringMatcher a({"\n\n", "User:"});
  expect_steps(a, {"a User: b\n\n"}, {"a "}, 0, 1);
  StopStringMatcher b({"\n\n", "User:"});
  expect_steps(b, {"x\n", "\ny User:"}, {"x", ""}, 1, 0);
}

TEST(StopStrings, PrefixThatTurnsOutNotToBeAStop) {
  StopStringMatcher m({"</s>"});
  expect_steps(m, {"a</", "b", "c<", "/", "x"}, {"a", "</b", "c", "", "</x"});
  EXPECT_FALSE(m.stopped());
}

TEST(StopStrings, OverlappingPartialMatch) {
  // "aa" is held; "aaab" contains "aab" from its second byte.
  StopStringMatcher m({"aab"});
  expect_steps(m, {"aa", "ab"}, {"", "a"}, 1);
}

TEST(StopStrings, Utf8) {
  StopStringMatcher m({"停止", "🛑"});
  // "停" (3 bytes) is held whole, then released when "下" shows it was no stop.
  expect_steps(m, {"我们停", "下", "然后停止了"}, {"我们", "停下", "然后"}, 2, 0);
  StopStringMatcher e({"🛑"});
  expect_steps(e, {"café ", "ok🛑"}, {"café ", "ok"}, 1, 0);
}

TEST(StopStrings, FlushReturnsTheHeldTail) {
  StopStringMatcher m({"</s>", "<|eot"});
  expect_steps(m, {"abc<", "|e"}, {"abc", ""});
  EXPECT_EQ(m.flush(), "<|e");
  EXPECT_EQ(m.flush(), "");
  EXPECT_FALSE(m.stopped());
}

TEST(StopStrings, NoStopsPassEverything) {
  StopStringMatcher m({});
  expect_steps(m, {"a", "</s>", ""}, {"a", "</s>", ""});
  EXPECT_EQ(m.flush(), "");
}

TEST(StopStrings, EmptyStopIsRejected) {
  try {
    StopStringMatcher m({"ok", ""});
    FAIL() << "accepted an empty stop string";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_input);
  }
}

}  // namespace
}  // namespace herd
