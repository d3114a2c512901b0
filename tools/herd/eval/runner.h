// Drives the engine for `herd eval`: keeps up to `concurrency` items in flight and lets the
// engine's continuous batching run them together. A multiple-choice item is one request per
// choice (its prompt logprobs give the choice's loglikelihood); a generation item is one request
// of n samples sharing the prompt's KV blocks. Items finish in the order the engine finishes them.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "herd/herd.h"
#include "exec.h"
#include "score.h"
#include "task-file.h"

namespace herd_cli::eval {

struct RunOptions {
  size_t concurrency = 0;          // items in flight; 0: all at once
  uint64_t seed = 0;               // each item samples with a seed derived from this and its task and id
  herd::SamplingOptions sampling;  // generation defaults; an item's own settings win, its stops are added
  int max_tokens = 512;            // per sample, unless the item says; cut to what the context leaves
  ExecLimits exec;                 // test commands (the caller checks --allow-exec)
};

struct RunStats {
  int64_t items_done = 0;
  int64_t prompt_tokens = 0, cached_prompt_tokens = 0, completion_tokens = 0;
  int64_t tokens() const { return prompt_tokens - cached_prompt_tokens + completion_tokens; }  // computed ones
};

// on_item receives each finished item; an error it returns stops the run. on_progress is called
// after every engine event. Errors name the item's FILE:LINE.
herd::Status run_items(herd::Engine& engine, const herd::Tokenizer& tokenizer, const std::vector<const TaskItem*>& items,
                       const RunOptions& options, const std::function<herd::Status(ItemResult&&)>& on_item,
                       const std::function<void(const RunStats&)>& on_progress, RunStats* stats);

}  // namespace herd_cli::eval
