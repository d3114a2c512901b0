#include "chat/aliases.h"

#include <array>
#include <utility>

namespace herd::chat {

std::string expand_aliases(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 8> kAliases = {{
      {"<<start>>", "<|begin_of_text|>"},
      {"<<system>>", "<|start_header_id|>system<|end_header_id|>\n\n"},
      {"<<user>>", "<|start_header_id|>user<|end_header_id|>\n\n"},
      {"<<assistant>>", "<|start_header_id|>assistant<|end_header_id|>\n\n"},
      {"<<ipython>>", "<|start_header_id|>ipython<|end_header_id|>\n\n"},
      {"<<end>>", "<|eot_id|>"},
      {"<<stop>>", "<|eot_id|>"},
      {"<<continue>>", "<|eom_id|>"},
  }};
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    bool matched = false;
    if (text.compare(i, 2, "<<") == 0) {
      for (const auto& [alias, expansion] : kAliases) {
        if (text.compare(i, alias.size(), alias) == 0) {
          out += expansion;
          i += alias.size();
          matched = true;
          break;
        }
      }
    }
    if (!matched) out += text[i++];
  }
  return out;
}

}  // namespace herd::chat
