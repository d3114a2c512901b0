// Stop strings matched across token boundaries. The detokenizer's text deltas go in; what comes
// out is the text that can no longer be part of a stop string. A matched stop string, and
// everything after it, is never emitted.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herd {

struct StopStep {
  std::string text;            // safe to emit now; on a hit, all the text before the stop string
  std::optional<size_t> stop;  // on a hit, the index of the stop string that matched
};

class StopStringMatcher {
 public:
  // Throws an invalid-input herd::Error on an empty stop string (it would match everywhere).
  explicit StopStringMatcher(std::vector<std::string> stops);

  // Appends a delta. Holds back the longest tail that is still a prefix of some stop string; on
  // the earliest match, returns the text before it and stops: later feeds return nothing.
  StopStep feed(std::string_view delta);
  // End of generation: the held-back tail, which no stop string can complete any more.
  std::string flush();

  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;  // text not yet emitted: at most the longest stop string less one byte
  bool stopped_ = false;
};

}  // namespace herd
