#include "sampling/stop-strings.h"

#include <algorithm>
#include <utility>

#include "common/check.h"

namespace herd {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (size_t i = 0; i < stops_.size(); ++i)
    HERD_REQUIRE(!stops_[i].empty(), "stop string ", i, " is empty");
}

StopStep StopStringMatcher::feed(std::string_view delta) {
  if (stopped_) return {};
  held_ += delta;

  // The earliest match wins; held_ had no complete stop string before this delta, so searching it
  // whole finds only matches that end in the delta.
  size_t hit_pos = std::string::npos;
  size_t hit_stop = 0;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t pos = held_.find(stops_[i]);
    if (pos < hit_pos) {
      hit_pos = pos;
      hit_stop = i;
    }
  }
  if (hit_pos != std::string::npos) {
    stopped_ = true;
    StopStep step{held_.substr(0, hit_pos), hit_stop};
    held_.clear();
    return step;
  }

  // Hold back the longest tail of held_ that some stop string starts with. Stop strings and deltas
  // are valid UTF-8 and a stop string starts on a character boundary, so the cut never splits a
  // character.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    for (size_t len = std::min(s.size() - 1, held_.size()); len > hold; --len) {
      if (std::string_view(held_).substr(held_.size() - len) ==
          std::string_view(s).substr(0, len)) {
        hold = len;
        break;
      }
    }
  }
  StopStep step{held_.substr(0, held_.size() - hold), std::nullopt};
  held_.erase(0, held_.size() - hold);
  return step;
}

std::string StopStringMatcher::flush() {
  std::string rest = std::move(held_);
  held_.clear();
  return rest;
}

}  // namespace herd
