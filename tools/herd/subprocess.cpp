// Running a shell command under limits (subprocess.h).
#include <fcntl.h>
#include <grp.h>
#include <linux/landlock.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "subprocess.h"

namespace herd_cli {
namespace {

using Clock = std::chrono::steady_clock;

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

std::string exit_description(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "ended abnormally";
}

void set_limit(int resource, const std::optional<int64_t>& value) {
  if (!value) return;
  const rlimit r{rlim_t(*value), rlim_t(*value)};
  setrlimit(resource, &r);
}

constexpr uid_t kNobody = 65534;

// The Landlock ABI version, 0 where the kernel has none.
long landlock_abi() {
  const long v = syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  return v > 0 ? v : 0;
}

// Writes allowed under `dir` (and to /dev/null) only; reading and executing stay as they were.
// Async-signal-safe: it runs between fork and exec. False when a step fails.
bool confine_writes(const char* dir, long abi) {
  uint64_t writes = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
                    LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
                    LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
                    LANDLOCK_ACCESS_FS_MAKE_SYM;
  uint64_t file_writes = LANDLOCK_ACCESS_FS_WRITE_FILE;
  if (abi >= 2) writes |= LANDLOCK_ACCESS_FS_REFER;
  // LANDLOCK_ACCESS_FS_TRUNCATE (ABI 3), by value: headers before Linux 6.2 lack the name.
  constexpr uint64_t kTruncate = uint64_t(1) << 14;
  if (abi >= 3) writes |= kTruncate, file_writes |= kTruncate;
  landlock_ruleset_attr attr{};
  attr.handled_access_fs = writes;
  const int ruleset = int(syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0));
  if (ruleset < 0) return false;
  const auto allow = [&](const char* path, uint64_t access) {
    landlock_path_beneath_attr rule{};
    rule.allowed_access = access;
    rule.parent_fd = open(path, O_PATH | O_CLOEXEC);
    if (rule.parent_fd < 0) return false;
    const bool ok = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) == 0;
    close(rule.parent_fd);
    return ok;
  };
  return allow(dir, writes) && allow("/dev/null", file_writes) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         syscall(SYS_landlock_restrict_self, ruleset, 0) == 0;
}

// What the child needs, prepared before fork: nothing may allocate between fork and exec.
struct ChildSetup {
  const char* command;
  const char* cwd;
  const SubprocessLimits* limits;
  char* const* envp;  // null: herd's environment
  long landlock = 0;  // the ABI, when writes are to be confined
  bool drop_root = false;
  int in_fd, out_fd, err_fd;
};

// Tells the parent why the child could not start (through err_fd, closed on exec) and exits.
[[noreturn]] void child_fails(int err_fd, const char* why) {
  if (write(err_fd, why, strlen(why)) < 0) {
  }
  _exit(126);
}

// The child: its own process group (a timeout kills whatever it started too), the pipes as
// stdin/stdout, stderr shared with herd unless merged into stdout, then the sandbox's parts.
// Only async-signal-safe calls between fork and exec: herd has other threads.
[[noreturn]] void exec_child(const ChildSetup& c) {
  const SubprocessLimits& limits = *c.limits;
  setpgid(0, 0);
  dup2(c.in_fd, STDIN_FILENO);
  dup2(c.out_fd, STDOUT_FILENO);
  if (limits.merge_stderr) dup2(c.out_fd, STDERR_FILENO);
  set_limit(RLIMIT_AS, limits.memory_bytes);
  set_limit(RLIMIT_CPU, limits.cpu_seconds);
  set_limit(RLIMIT_FSIZE, limits.file_bytes);
  set_limit(RLIMIT_CORE, limits.core_bytes);
  set_limit(RLIMIT_NPROC, limits.processes);
  if (*c.cwd && chdir(c.cwd) != 0) child_fails(c.err_fd, "cannot enter its working directory");
  const bool no_network = limits.sandbox && limits.sandbox->no_network;
  // Root (or CAP_SYS_ADMIN) gets a network namespace directly; anyone else through a user
  // namespace of its own, made after root is dropped (nobody is not mapped inside one).
  const bool netns_done = !no_network || unshare(CLONE_NEWNET) == 0;
  if (c.drop_root && (setgroups(0, nullptr) != 0 || setgid(kNobody) != 0 || setuid(kNobody) != 0))
    child_fails(c.err_fd, "cannot drop root (setuid to nobody failed)");
  if (!netns_done && unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
    child_fails(c.err_fd, "cannot cut off the network (this kernel or container allows no network namespace)");
  if (c.landlock > 0 && !confine_writes(".", c.landlock))
    child_fails(c.err_fd, "cannot confine writes to the working directory (Landlock failed)");
  // herd ignores SIGPIPE, and an ignored signal would stay ignored across exec.
  signal(SIGPIPE, SIG_DFL);
  const char* argv[] = {"sh", "-c", c.command, nullptr};
  if (c.envp) execve("/bin/sh", const_cast<char* const*>(argv), c.envp);
  else execv("/bin/sh", const_cast<char* const*>(argv));
  child_fails(c.err_fd, "cannot run /bin/sh");
}

// The sandbox's environment: nothing of herd's (no tokens, no proxies), a home of its own.
std::vector<std::string> clean_environment(const std::string& dir) {
  return {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir, "TMPDIR=" + dir, "LANG=C.UTF-8",
          "PYTHONDONTWRITEBYTECODE=1"};
}

// The pids whose parent is herd, from /proc/PID/stat ("pid (comm) state ppid ..."; comm may hold
// spaces and parentheses, so the fields are read after its last ')').
std::vector<pid_t> herd_children() {
  std::vector<pid_t> out;
  const pid_t self = getpid();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos || paren + 4 >= stat.size()) continue;
    if (std::atol(stat.c_str() + paren + 4) == long(self)) out.push_back(pid_t(std::atol(name.c_str())));
  }
  return out;
}

// What a command left behind once it has ended: its process group (background jobs that kept
// the group), then every remaining descendant. herd is a subreaper, so descendants that left the
// group or the session (setsid, daemons) are reparented to herd when their parents exit; killing
// and reaping herd's children until none is left therefore ends them all, grandchildren included.
// The command's own process must not be reaped yet: its pid, the group's id, stays reserved.
void kill_leftovers(pid_t pid) {
  kill(-pid, SIGKILL);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  for (int round = 0; round < 1000; ++round) {
    const std::vector<pid_t> children = herd_children();
    if (children.empty()) return;
    for (pid_t child : children) kill(child, SIGKILL);
    for (pid_t child : children)
      while (waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
      }
  }
}

// run_subprocess in `cwd`, with the lock held.
SubprocessResult run_locked(const std::string& command, const std::string& input, const SubprocessLimits& limits,
                            const std::string& cwd, const std::atomic<bool>& stop) {
  SubprocessResult out;
  ChildSetup setup{command.c_str(), cwd.c_str(), &limits, nullptr, 0, false, -1, -1, -1};
  std::vector<std::string> env;
  std::vector<char*> envp;
  if (limits.sandbox) {
    if (limits.sandbox->clean_environment) {
      env = clean_environment(cwd.empty() ? "/" : cwd);
      for (std::string& e : env) envp.push_back(e.data());
      envp.push_back(nullptr);
      setup.envp = envp.data();
    }
    if (limits.sandbox->confine_writes) setup.landlock = landlock_abi();
    setup.drop_root = limits.sandbox->drop_root && geteuid() == 0;
  }
  int to_child[2], from_child[2], errors[2];
  if (pipe2(to_child, O_CLOEXEC) != 0) return {false, "", "cannot create a pipe"};
  if (pipe2(from_child, O_CLOEXEC) != 0 || pipe2(errors, O_CLOEXEC) != 0) {
    close(to_child[0]);
    close(to_child[1]);
    return {false, "", "cannot create a pipe"};
  }
  setup.in_fd = to_child[0];
  setup.out_fd = from_child[1];
  setup.err_fd = errors[1];
  const pid_t pid = fork();
  if (pid == 0) exec_child(setup);
  close(to_child[0]);
  close(from_child[1]);
  close(errors[1]);
  int in_fd = to_child[1], out_fd = from_child[0], err_fd = errors[0];
  if (pid < 0) {
    close_fd(in_fd);
    close_fd(out_fd);
    close_fd(err_fd);
    return {false, "", "cannot start the command (fork failed)"};
  }
  setpgid(pid, pid);  // also here: the kill below must not race the child's own setpgid
  fcntl(in_fd, F_SETFL, O_NONBLOCK);
  fcntl(out_fd, F_SETFL, O_NONBLOCK);

  // Capped at a year, so that no timeout a task file can write overflows the clock.
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(std::min(limits.timeout_s, 3.2e7)));
  size_t written = 0;
  if (input.empty()) close_fd(in_fd);
  std::string failure;
  int status = 0;
  while (failure.empty()) {
    if (stop.load()) {
      failure = "was stopped (Ctrl-C)";
      break;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%g", limits.timeout_s);
      failure = std::string("timed out after ") + secs + " s";
      break;
    }
    if (out_fd < 0) {
      // stdout is closed; wait for the exit itself (polled: there is no fd to wait on portably).
      // WNOWAIT: the exited process stays a zombie, so that its group id is not reused before
      // kill_leftovers.
      siginfo_t info{};
      if (waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
        status = info.si_code == CLD_EXITED ? W_EXITCODE(info.si_status, 0) : info.si_status;
        break;
      }
      usleep(5000);
      continue;
    }
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {in_fd, POLLOUT, 0}};
    // Short slices so that a Ctrl-C is noticed promptly.
    const int n = poll(fds, in_fd >= 0 ? 2 : 1, int(std::min<long long>(left, 100)));
    if (n < 0 && errno != EINTR) {
      failure = "cannot be watched (poll failed)";
      break;
    }
    if (in_fd >= 0 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t w = write(in_fd, input.data() + written, input.size() - written);
      if (w > 0) written += size_t(w);
      // EPIPE: the command does not read its input, which is its business.
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) close_fd(in_fd);
    }
    if (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) {
      char buf[16384];
      const ssize_t r = read(out_fd, buf, sizeof buf);
      if (r > 0) {
        out.output.append(buf, size_t(r));
        if (int64_t(out.output.size()) > limits.output_cap)
          failure = "wrote more than " + std::to_string(limits.output_cap) + " bytes";
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        close_fd(out_fd);
      }
    }
  }
  close_fd(in_fd);
  close_fd(out_fd);
  kill_leftovers(pid);  // on a failure too: the kill ends the command itself
  // The child is gone, so its end of the error pipe is closed: a read cannot block.
  char why[256];
  const ssize_t n = read(err_fd, why, sizeof why);
  close_fd(err_fd);
  if (n > 0) {
    out.error = "could not be started: " + std::string(why, size_t(n));
    return out;
  }
  if (failure.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) failure = exit_description(status);
  if (!failure.empty()) {
    out.error = "the command " + failure;
    return out;
  }
  out.ok = true;
  return out;
}

}  // namespace

SubprocessResult run_subprocess(const std::string& command, const std::string& input, const SubprocessLimits& limits,
                                const std::atomic<bool>& stop) {
  // Orphans reparented to herd cannot be told apart by the command that made them, so commands
  // run one at a time and each one's leftovers are all of herd's children once it has ended.
  static std::mutex one_at_a_time;
  const std::lock_guard lock(one_at_a_time);
  static std::once_flag subreaper;
  std::call_once(subreaper, [] { prctl(PR_SET_CHILD_SUBREAPER, 1); });
  if (!limits.sandbox || !limits.sandbox->fresh_directory) return run_locked(command, input, limits, limits.cwd, stop);
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/herd-sandbox-XXXXXX";
  if (!mkdtemp(dir.data())) return {false, "", "could not be started: cannot create a working directory in " + dir};
  if (limits.sandbox->drop_root && geteuid() == 0 && chown(dir.c_str(), kNobody, kNobody) != 0) {
    rmdir(dir.c_str());
    return {false, "", "could not be started: cannot hand its working directory to nobody"};
  }
  SubprocessResult r = run_locked(command, input, limits, dir, stop);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return r;
}

const SandboxStatus& sandbox_status() {
  static const SandboxStatus status = [] {
    SandboxStatus s;
    SubprocessLimits limits;
    limits.timeout_s = 10;
    limits.sandbox = Sandbox{};
    limits.sandbox->confine_writes = false;
    const std::atomic<bool> no_stop{false};
    const SubprocessResult r = run_subprocess("true", "", limits, no_stop);
    if (!r.ok) s.network_error = r.error;
    limits.sandbox->confine_writes = true;
    s.confined_writes = landlock_abi() > 0 && run_subprocess("true", "", limits, no_stop).ok;
    s.as_nobody = geteuid() == 0;
    return s;
  }();
  return status;
}

}  // namespace herd_cli
