// Short aliases for the Llama 3.1 special tokens, such as <<user>> (docs/prompt-format.md).
#pragma once

#include <string>
#include <string_view>

namespace herd::chat {

// <<start>> -> <|begin_of_text|>; <<system>>, <<user>>, <<assistant>>, <<ipython>> -> that role's
// header and its blank line; <<end>>, <<stop>> -> <|eot_id|>; <<continue>> -> <|eom_id|>.
std::string expand_aliases(std::string_view text);

}  // namespace herd::chat
