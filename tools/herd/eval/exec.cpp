#include "exec.h"

#include <stdlib.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "../subprocess.h"

namespace herd_cli::eval {

TestOutcome run_test_command(const TestCommand& test, const std::string& answer, const ExecLimits& limits) {
  std::error_code ec;
  std::string dir = (std::filesystem::temp_directory_path(ec) / "herd-eval-XXXXXX").string();
  if (ec || !mkdtemp(dir.data())) return {false, "cannot create a temporary directory for the test", ""};
  SubprocessLimits l;
  l.timeout_s = test.timeout_s.value_or(limits.timeout_s);
  l.output_cap = limits.output_cap;
  l.memory_bytes = limits.memory_bytes;
  l.cpu_seconds = int64_t(std::ceil(l.timeout_s)) + 1;  // a backstop should the timeout's kill fail
  l.file_bytes = limits.file_bytes;
  l.core_bytes = 0;
  l.cwd = dir;
  l.merge_stderr = true;  // a failing test's traceback belongs in its record, not on herd's stderr
  static const std::atomic<bool> never{false};
  SubprocessResult r = run_subprocess(test.command, test.prefix + answer + test.suffix, l, never);
  std::filesystem::remove_all(dir, ec);
  return {r.ok, std::move(r.error), std::move(r.output)};
}

}  // namespace herd_cli::eval
