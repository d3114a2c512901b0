// Running a shell command under limits (subprocess.h).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

// The child: its own process group (a timeout kills whatever it started too), the pipes as
// stdin/stdout, stderr shared with herd unless merged into stdout. Only async-signal-safe calls
// between fork and exec: herd has other threads.
[[noreturn]] void exec_child(const char* command, const char* cwd, const SubprocessLimits& limits, int in_fd, int out_fd) {
  setpgid(0, 0);
  dup2(in_fd, STDIN_FILENO);
  dup2(out_fd, STDOUT_FILENO);
  if (limits.merge_stderr) dup2(out_fd, STDERR_FILENO);
  set_limit(RLIMIT_AS, limits.memory_bytes);
  set_limit(RLIMIT_CPU, limits.cpu_seconds);
  set_limit(RLIMIT_FSIZE, limits.file_bytes);
  set_limit(RLIMIT_CORE, limits.core_bytes);
  if (*cwd && chdir(cwd) != 0) _exit(126);
  // herd ignores SIGPIPE, and an ignored signal would stay ignored across exec.
  signal(SIGPIPE, SIG_DFL);
  execl("/bin/sh", "sh", "-c", command, static_cast<char*>(nullptr));
  _exit(127);
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

}  // namespace

SubprocessResult run_subprocess(const std::string& command, const std::string& input, const SubprocessLimits& limits,
                                const std::atomic<bool>& stop) {
  // Orphans reparented to herd cannot be told apart by the command that made them, so commands
  // run one at a time and each one's leftovers are all of herd's children once it has ended.
  static std::mutex one_at_a_time;
  const std::lock_guard lock(one_at_a_time);
  static std::once_flag subreaper;
  std::call_once(subreaper, [] { prctl(PR_SET_CHILD_SUBREAPER, 1); });
  SubprocessResult out;
  int to_child[2], from_child[2];
  if (pipe2(to_child, O_CLOEXEC) != 0) return {false, "", "cannot create a pipe"};
  if (pipe2(from_child, O_CLOEXEC) != 0) {
    close(to_child[0]);
    close(to_child[1]);
    return {false, "", "cannot create a pipe"};
  }
  const pid_t pid = fork();
  if (pid == 0) exec_child(command.c_str(), limits.cwd.c_str(), limits, to_child[0], from_child[1]);
  close(to_child[0]);
  close(from_child[1]);
  int in_fd = to_child[1], out_fd = from_child[0];
  if (pid < 0) {
    close_fd(in_fd);
    close_fd(out_fd);
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
  if (failure.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) failure = exit_description(status);
  if (!failure.empty()) {
    out.error = "the command " + failure;
    return out;
  }
  out.ok = true;
  return out;
}

}  // namespace herd_cli
