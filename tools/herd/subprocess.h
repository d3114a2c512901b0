// Running a shell command under limits: fork/exec of `/bin/sh -c COMMAND` in its own process
// group, `input` written to its stdin and its stdout read back through non-blocking pipes under
// one poll loop, so that a command that neither reads nor exits cannot stall herd. `herd chat`
// runs tool commands with it, `herd eval` test commands, and code_interpreter's code inside the
// sandbox below (docs/tools.md).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

namespace herd_cli {

// Isolation for code nobody vetted (the model's). Each part is set up in the child before exec;
// one that is asked for and cannot be set up ends the run with an error naming it, except
// confine_writes, which is skipped on kernels without Landlock (sandbox_status says so).
struct Sandbox {
  bool clean_environment = true;  // only PATH, HOME and TMPDIR (the working directory), LANG
  bool no_network = true;         // its own network namespace: no interface but a loopback that is down
  bool confine_writes = true;     // Landlock: files are written under the working directory only
  bool drop_root = true;          // when herd runs as root: the child runs as nobody (65534)
  bool fresh_directory = true;    // a new empty working directory under $TMPDIR, removed afterwards
};

struct SubprocessLimits {
  double timeout_s = 30;          // wall clock; then the whole process group is killed
  int64_t output_cap = 64 << 10;  // bytes of stdout (and stderr, with merge_stderr)
  // setrlimit in the child; unset ones are inherited from herd.
  std::optional<int64_t> memory_bytes;  // RLIMIT_AS
  std::optional<int64_t> cpu_seconds;   // RLIMIT_CPU
  std::optional<int64_t> file_bytes;    // RLIMIT_FSIZE: the largest file it may write
  std::optional<int64_t> core_bytes;    // RLIMIT_CORE
  // RLIMIT_NPROC: processes of its user, all of them; the kernel does not apply it to root.
  std::optional<int64_t> processes;
  std::optional<Sandbox> sandbox;
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

// What a Sandbox with every part set gets on this machine, found by running `true` in one once:
// network_error is empty when the network can be cut off (else why not), confined_writes says
// whether Landlock holds writes to the working directory, as_nobody whether root is dropped.
struct SandboxStatus {
  std::string network_error;
  bool confined_writes = false, as_nobody = false;
};
const SandboxStatus& sandbox_status();

}  // namespace herd_cli
