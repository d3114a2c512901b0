// From a file's bytes to lines of plain text: binary files recognised, invalid UTF-8 repaired,
// HTML reduced to its text with every line kept where it was (so that a passage's line range
// points into the file as it is on disk), and the lines that start a section marked.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace herd::rag {

enum class DocKind { text, markdown, html };

struct Document {
  std::vector<std::string> lines;  // line i is the file's line i + 1
  std::vector<bool> heading;       // the line starts a section (a Markdown heading, an <h1>..<h6>)
};

// NUL bytes, or more than one byte in 20 outside valid UTF-8: not a document.
bool looks_binary(std::string_view bytes);
// Every byte that is not part of a valid UTF-8 sequence becomes U+FFFD.
std::string valid_utf8(std::string_view bytes);
// HTML by its extension (.html, .htm, .xhtml) or its first tag (<!DOCTYPE html, <html); Markdown by
// .md / .markdown; anything else is plain text (source code included).
DocKind kind_of(std::string_view path, std::string_view text);
// Tags and comments removed, <script> and <style> dropped with their content, entities decoded;
// newlines stay, so line N of the result is line N of the input.
std::string strip_html(std::string_view html, std::vector<bool>* heading_lines);
// `text` is valid UTF-8.
Document extract(std::string_view text, DocKind kind);

}  // namespace herd::rag
