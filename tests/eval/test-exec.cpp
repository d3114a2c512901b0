// Test commands in a subprocess: pass and fail by exit status, a timeout that kills, resource
// limits, a scratch directory that is removed, nothing left running afterwards.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>

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

// Processes whose command line is exactly `sleep SECONDS`.
int count_sleeps(const std::string& seconds) {
  const std::string want = std::string("sleep") + '\0' + seconds + '\0';
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream in(entry.path() / "cmdline");
    const std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    n += cmdline == want ? 1 : 0;
  }
  return n;
}

TEST(Exec, NothingOutlivesTheCommand) {
  // Markers unique to this process, so that tests running side by side do not see each other's.
  const std::string in_session = "3001." + std::to_string(getpid()), in_group = "3002." + std::to_string(getpid());
  // One child in a new session (out of the process group), one in the background of the group;
  // neither holds the output pipe, so the command ends at once and passes.
  const TestOutcome r = run_test_command(
      command("setsid sleep " + in_session + " >/dev/null 2>&1 & sleep " + in_group + " >/dev/null 2>&1 & exit 0"), "", {});
  EXPECT_TRUE(r.passed) << r.error;
  EXPECT_EQ(count_sleeps(in_session), 0);
  EXPECT_EQ(count_sleeps(in_group), 0);
  // The same on a timeout, with a grandchild that escaped from a child that is still running.
  ExecLimits limits;
  limits.timeout_s = 0.3;
  EXPECT_FALSE(run_test_command(command("sh -c 'setsid sleep " + in_session + " >/dev/null 2>&1 & sleep 30'"), "", limits).passed);
  EXPECT_EQ(count_sleeps(in_session), 0);
}

}  // namespace
}  // namespace herd_cli::eval
