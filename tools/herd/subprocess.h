// Running a shell command under limits: fork/exec of `/bin/sh -c COMMAND` in its own process
// group, `input` written to its stdin and its stdout read back through non-blocking pipes under
// one poll loop, so that a command that neither reads nor exits cannot stall herd. `herd chat`
// runs tool commands with it, `herd eval` test commands.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

namespace herd_cli {

struct SubprocessLimits {
  double timeout_s = 30;          // wall clock; then the whole process group is killed
  int64_t output_cap = 64 << 10;  // bytes of stdout (and stderr, with merge_stderr)
  // setrlimit in the child; unset ones are inherited from herd.
  std::optional<int64_t> memory_bytes;  // RLIMIT_AS
  std::optional<int64_t> cpu_seconds;   // RLIMIT_CPU
  std::optional<int64_t> file_bytes;    // RLIMIT_FSIZE: the largest file it may write
  std::optional<int64_t> core_bytes;    // RLIMIT_CORE
  std::string cwd;            // its working directory; empty: herd's
  bool merge_stderr = false;  // false: its stderr is herd's, so that its complaints are seen
};

struct SubprocessResult {
  bool ok = false;     // it exited with status 0 within the limits
  std::string output;  // what it wrote to stdout, also when it failed (a test's traceback)
  std::string error;   // one line saying what went wrong otherwise ("the command timed out after 10 s")
};

// The whole process group is killed on a timeout, on output beyond the cap, or once `stop` turns
// true (Ctrl-C); and whenever the command ends, whatever it left running is killed too: its
// process group, then every other descendant (herd makes itself a subreaper on the first call, so
// that a child that escaped with setsid comes back to it when its parent exits). Calls run one
// at a time.
SubprocessResult run_subprocess(const std::string& command, const std::string& input, const SubprocessLimits& limits,
                                const std::atomic<bool>& stop);

}  // namespace herd_cli
