// What `herd info` prints and `herd chat` shows as it starts: the model, where it runs, its KV
// budget and the sampling a chat uses. One JSON object, and the same facts as aligned text lines.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "herd/herd.h"

namespace herd_cli {

// The sampling and reply cap a chat runs with, every sampling field set (cmd-chat.cpp).
struct ChatSettings {
  herd::SamplingOptions sampling;
  int max_tokens = 0;         // per reply; 0: until the context is full
  bool default_cap = false;   // max_tokens is herd chat's default (no -n)
  std::string source;         // where the unset sampling options came from
};

// tokenizer: null when the model has none.
nlohmann::ordered_json model_summary(const herd::Engine& engine, const herd::Tokenizer* tokenizer,
                                     const ChatSettings& chat);
// "key: value" lines, one per fact, each ending in a newline.
std::string summary_text(const nlohmann::ordered_json& summary);

}  // namespace herd_cli
