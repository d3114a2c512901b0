// Text from a model or a tool on its way to a terminal. Such text can hold control characters
// (an escape sequence can retitle the window, rewrite the clipboard or hide what was printed),
// so everything `herd chat` shows of it goes through visible_text.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace herd_cli {

// Control characters (C0, DEL, and C1 as UTF-8) written as visible escapes: ESC becomes the four
// characters \x1b, a newline \n. keep_lines: newlines and tabs stay as they are (a reply's text).
std::string visible_text(std::string_view text, bool keep_lines = false);

// At most max_bytes of text, cut at a UTF-8 character boundary, then " ... (N bytes)" when cut.
std::string shortened(std::string_view text, size_t max_bytes);

}  // namespace herd_cli
