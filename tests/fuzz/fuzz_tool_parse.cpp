// libFuzzer target for the tool-call parser: any bytes, parsed at once and fed in pieces. It
// must never crash or throw, the calls' raw text must come from the input, no call may be nested
// past the JSON limit, and the streaming detector (which resumes each parse where the last one
// left off) must agree with the one-shot parse: the streamed text is a prefix of the final
// content (what a chat UI showed can never be taken back), and finish() returns the same result.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "chat/tool-parse.h"
#include "common/json-limits.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string> builtins = {"brave_search", "wolfram_alpha", "photogen"};
  const herd::chat::Parsed once = herd::chat::parse_completion(text, builtins, /*final=*/true);
  size_t call_bytes = 0;
  for (const herd::chat::ToolCall& c : once.calls) {
    if (text.find(c.raw) == std::string_view::npos) std::abort();
    if (herd::json_depth(c.arguments) > herd::kMaxJsonDepth + 1) std::abort();
    call_bytes += c.raw.size();
  }
  if (once.content.size() + call_bytes > size) std::abort();

  herd::chat::ToolCallStream stream(builtins);
  std::string visible;
  // Piece sizes from the input itself, so that the fuzzer explores the splits too.
  for (size_t pos = 0, k = 0; pos < size; ++k) {
    const size_t n = 1 + (size ? data[k % size] % 7 : 0);
    stream.push(text.substr(pos, n), visible);
    pos += n;
  }
  const herd::chat::Parsed streamed = stream.finish(visible);
  if (visible != once.content || streamed.content != once.content || streamed.calls.size() != once.calls.size() ||
      streamed.diagnostics != once.diagnostics)
    std::abort();
  for (size_t i = 0; i < once.calls.size(); ++i)
    if (streamed.calls[i].raw != once.calls[i].raw || streamed.calls[i].arguments != once.calls[i].arguments)
      std::abort();
  return 0;
}
