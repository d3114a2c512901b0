// Progress of a long command on stderr (stdout carries only results, docs/cli.md): a bar redrawn in
// place when the stream is a terminal, otherwise a plain line every few seconds so that logs stay
// readable. Shows units done of the total, the ETA at the rate so far, and tokens (or another
// count, rate_unit) per second.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace herd_cli {

class Progress {
 public:
  // unit: what is counted ("items", "windows"). out: stderr, or a file in tests.
  Progress(std::string label, int64_t total, std::string unit, std::FILE* out = stderr);
  // Cheap to call often: it draws at most ten times a second (a terminal) or every
  // `line_interval_s` (anything else).
  void update(int64_t done, int64_t tokens);
  // The last state, on its own line.
  void finish();

  double line_interval_s = 10;
  // What update's second count is per second ("tok/s"); empty leaves the rate out.
  std::string rate_unit = "tok/s";

 private:
  using Clock = std::chrono::steady_clock;
  std::string line(double elapsed_s) const;
  void draw(bool final);

  std::string label_, unit_;
  int64_t total_, done_ = 0, tokens_ = 0;
  std::FILE* out_;
  bool terminal_;
  Clock::time_point start_ = Clock::now(), last_draw_{};
  bool drawn_ = false;
  int64_t drawn_done_ = 0;  // done_ when the last line was drawn
};

// "1:05", "1:02:03"; "?" for an unknown (infinite or negative) time.
std::string format_duration(double seconds);

}  // namespace herd_cli
