// Test commands of generation items (pass@k): each sample's answer is handed to the item's
// command in a fresh temporary directory, under a wall-clock timeout and resource limits. They
// run only when the user asked for it (--allow-exec): a model's output is untrusted code.
#pragma once

#include <cstdint>
#include <string>

#include "task-file.h"

namespace herd_cli::eval {

struct ExecLimits {
  double timeout_s = 10;                      // per sample, unless the item sets its own
  int64_t memory_bytes = int64_t(2) << 30;    // address space (RLIMIT_AS)
  int64_t file_bytes = int64_t(64) << 20;     // the largest file it may write (RLIMIT_FSIZE)
  int64_t output_cap = int64_t(1) << 20;      // bytes of stdout and stderr together
};

struct TestOutcome {
  bool passed = false;  // exit status 0 within the limits
  std::string error;    // why not ("the command exited with status 1", "... timed out after 10 s")
  std::string output;   // its stdout and stderr, kept for a failure's record
};

// Runs test.command with test.prefix + answer + test.suffix on its stdin. CPU time is capped at
// the timeout (rounded up) plus one second, core dumps are off, and the directory is removed after.
TestOutcome run_test_command(const TestCommand& test, const std::string& answer, const ExecLimits& limits);

}  // namespace herd_cli::eval
