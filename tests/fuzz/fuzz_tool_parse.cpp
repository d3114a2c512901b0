// libFuzzer target for the tool-call parser: any bytes, parsed at once and fed in pieces. It
// must never crash or throw, the calls' raw text must come from the input, and the streamed
// text must be a prefix of the final content (what a chat UI showed can never be taken back).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "chat/tool-parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string> builtins = {"brave_search", "wolfram_alpha", "photogen"};
  const herd::chat::Parsed once = herd::chat::parse_completion(text, builtins, /*final=*/true);
  for (const herd::chat::ToolCall& c : once.calls)
    if (text.find(c.raw) == std::string_view::npos) std::abort();

  herd::chat::ToolCallStream stream(builtins);
  std::string visible;
  // Piece sizes from the input itself, so that the fuzzer explores the splits too.
  for (size_t pos = 0, k = 0; pos < size; ++k) {
    const size_t n = 1 + (size ? data[k % size] % 7 : 0);
    stream.push(text.substr(pos, n), visible);
    pos += n;
  }
  const herd::chat::Parsed streamed = stream.finish(visible);
  if (visible != once.content || streamed.content != once.content || streamed.calls.size() != once.calls.size())
    std::abort();
  return 0;
}
