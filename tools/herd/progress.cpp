#include "progress.h"

#include <unistd.h>

#include <cmath>

namespace herd_cli {

Progress::Progress(std::string label, int64_t total, std::string unit, std::FILE* out)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), out_(out), terminal_(isatty(fileno(out)) != 0) {}

void Progress::update(int64_t done, int64_t tokens) {
  done_ = done;
  tokens_ = tokens;
  draw(false);
}

void Progress::finish() { draw(true); }

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = std::llround(seconds);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60), (long long)(s % 60));
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

std::string Progress::line(double elapsed_s) const {
  constexpr int kWidth = 24;
  const double fraction = total_ > 0 ? double(done_) / double(total_) : 1.0;
  const int filled = int(fraction * kWidth);
  // The ETA assumes the rest goes at the rate so far; unknown until something is done.
  const double eta = done_ > 0 ? elapsed_s * double(total_ - done_) / double(done_) : INFINITY;
  const double tok_s = elapsed_s > 0 ? double(tokens_) / elapsed_s : 0;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s [%s%s] %lld/%lld %s, %s elapsed, ETA %s", label_.c_str(),
                std::string(size_t(filled), '#').c_str(), std::string(size_t(kWidth - filled), '.').c_str(),
                (long long)done_, (long long)total_, unit_.c_str(), format_duration(elapsed_s).c_str(),
                done_ >= total_ ? "0:00" : format_duration(eta).c_str());
  std::string text = buf;
  if (!rate_unit.empty()) {
    std::snprintf(buf, sizeof buf, ", %.0f %s", tok_s, rate_unit.c_str());
    text += buf;
  }
  return text;
}

void Progress::draw(bool final) {
  const Clock::time_point now = Clock::now();
  const double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  if (!final && drawn_ && since_draw < (terminal_ ? 0.1 : line_interval_s)) return;
  // A log already holds the last state when nothing moved since: no second, identical line.
  if (final && !terminal_ && drawn_ && done_ == drawn_done_) return;
  const std::string text = line(std::chrono::duration<double>(now - start_).count());
  // On a terminal the line is redrawn in place (\r, then clear to the end of the line).
  if (terminal_) std::fprintf(out_, "\r%s\x1b[K%s", text.c_str(), final ? "\n" : "");
  else std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
  last_draw_ = now;
  drawn_ = true;
  drawn_done_ = done_;
}

}  // namespace herd_cli
