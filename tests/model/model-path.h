// Where the real small model lives: $HERD_SMOLLM2, else scripts/fetch-model's default cache.
#pragma once

#include <cstdlib>
#include <string>

inline std::string smollm2_path() {
  if (const char* p = std::getenv("HERD_SMOLLM2"); p && *p) return p;
  const char* cache = std::getenv("HERD_MODEL_CACHE");
  std::string dir = cache && *cache ? cache : "";
  if (dir.empty()) {
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    dir = xdg && *xdg ? std::string(xdg) + "/herd" : std::string(home ? home : ".") + "/.cache/herd";
  }
  return dir + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}
