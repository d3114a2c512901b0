// Test commands in a subprocess: pass and fail by exit status, a timeout that kills, resource
// limits, a scratch directory that is removed.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "exec.h"

namespace herd_cli::eval {
namespace {

TestCommand command(const std::string& cmd) {
  TestCommand t;
  t.command = cmd;
  return t;
}

TEST(Exec, PassesOnExitStatusZero) {
  TestCommand t = command("grep -qx 'x = ok'");
  t.prefix = "x = ";
  EXPECT_TRUE(run_test_command(t, "ok", {}).passed);  // the answer arrives between prefix and suffix
  const TestOutcome fail = run_test_command(t, "bad", {});
  EXPECT_FALSE(fail.passed);
  EXPECT_EQ(fail.error, "the command exited with status 1");
}

TEST(Exec, KeepsTheOutputOfAFailure) {
  const TestOutcome r = run_test_command(command("echo to-stdout; echo to-stderr >&2; exit 3"), "", {});
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.output, "to-stdout\nto-stderr\n");
  EXPECT_EQ(r.error, "the command exited with status 3");
}

TEST(Exec, ATimeoutKillsTheCommandAndWhatItStarted) {
  ExecLimits limits;
  limits.timeout_s = 0.5;
  const auto start = std::chrono::steady_clock::now();
  const TestOutcome r = run_test_command(command("sleep 30 & sleep 30"), "", limits);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.error, "the command timed out after 0.5 s");
  EXPECT_LT(s, 5.0);
  TestCommand own = command("sleep 30");
  own.timeout_s = 0.2;  // the item's own timeout wins
  EXPECT_EQ(run_test_command(own, "", {}).error, "the command timed out after 0.2 s");
}

TEST(Exec, MemoryAndFileSizeAreLimited) {
  ExecLimits limits;
  limits.memory_bytes = int64_t(256) << 20;
  limits.file_bytes = int64_t(1) << 20;
  EXPECT_FALSE(run_test_command(command("python3 -c 'x = bytearray(1 << 30)'"), "", limits).passed);
  EXPECT_TRUE(run_test_command(command("python3 -c 'x = bytearray(1 << 20)'"), "", limits).passed);
  EXPECT_FALSE(run_test_command(command("head -c 2000000 /dev/zero > big"), "", limits).passed);
  EXPECT_TRUE(run_test_command(command("head -c 1000 /dev/zero > small"), "", limits).passed);
}

TEST(Exec, RunsInAScratchDirectoryThatIsRemoved) {
  const TestOutcome r = run_test_command(command("pwd; touch made-here; false"), "", {});
  const std::string dir = r.output.substr(0, r.output.find('\n'));
  EXPECT_NE(dir.find("herd-eval-"), std::string::npos) << dir;
  EXPECT_FALSE(std::filesystem::exists(dir));
}

}  // namespace
}  // namespace herd_cli::eval
