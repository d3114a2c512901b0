#include "chat/llama3-format.h"

#include "chat/tools.h"
#include "common/check.h"

namespace herd::chat {
namespace {

bool is_py_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// The code point starting at s[i] and its length in bytes; invalid UTF-8 reads as one byte.
std::pair<uint32_t, size_t> decode_at(const std::string& s, size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  const size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 1;
  if (n == 1 || i + n > s.size()) return {b, 1};
  uint32_t c = b & (0x7f >> n);
  for (size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
  return {c, n};
}

// The start of the code point that ends just before byte `end`.
size_t previous_start(const std::string& s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && end - i < 4 && (static_cast<unsigned char>(s[i]) & 0xc0) == 0x80) --i;
  return decode_at(s, i).second == end - i ? i : end - 1;
}

const std::string& text_content(const Message& m, const std::string& where) {
  HERD_REQUIRE(m.content.is_string(), where, ".content: must be a string for role ", m.role);
  return m.content.get_ref<const std::string&>();
}

void add_header(const std::string& role, PromptText& out) {
  out.add_template("<|start_header_id|>");
  out.add_content(role);
  out.add_template("<|end_header_id|>\n\n");
}

// A tool result: the template writes strings, mappings and lists through tojson (a string is
// iterable, so it comes out quoted) and anything else as Python prints it.
void add_tool_result(const Message& m, const std::string& where, PromptText& out) {
  add_header("ipython", out);
  const bool as_json = m.content.is_string() || m.content.is_object() || m.content.is_array();
  if (as_json) out.add_json(m.content, -1, where + ".content");
  else out.add_content(py_str(m.content));
  out.add_template("<|eot_id|>");
}

}  // namespace

std::string py_strip(const std::string& s) {
  size_t begin = 0, end = s.size();
  while (begin < end) {
    auto [c, n] = decode_at(s, begin);
    if (!is_py_space(c)) break;
    begin += n;
  }
  while (end > begin) {
    const size_t start = previous_start(s, end);
    if (!is_py_space(decode_at(s, start).first)) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

PromptText render_llama3(const Conversation& c) {
  PromptText out;
  const std::vector<Message>& msgs = c.messages;
  size_t next = 0;
  std::string system_message;
  if (!msgs.empty() && msgs[0].role == "system") {
    system_message = py_strip(text_content(msgs[0], "messages[0]"));
    next = 1;
  }

  out.add_template("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n");
  if (c.builtin_tools || c.tools) out.add_template("Environment: ipython\n");
  if (c.builtin_tools) add_builtin_tools_line(*c.builtin_tools, out);
  out.add_template("Cutting Knowledge Date: December 2023\nToday Date: ");
  out.add_content(c.date_string);
  out.add_template("\n\n");
  if (c.tools && !c.tools_in_user_message) {
    out.add_template(
        "You have access to the following functions. To call a function, please respond with JSON for a "
        "function call.");
    add_tool_definitions(*c.tools, out);
  }
  out.add_content(system_message);
  out.add_template("<|eot_id|>");

  if (c.tools && c.tools_in_user_message) {
    // The template takes the next message whatever its role.
    HERD_REQUIRE(next < msgs.size(), "messages: tools go into the first user message, and there is none");
    const std::string where = "messages[" + std::to_string(next) + "]";
    out.add_template(
        "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON "
        "for a function call with its proper arguments that best answers the given prompt.\n\n");
    add_tool_definitions(*c.tools, out);
    out.add_content(py_strip(text_content(msgs[next], where)));
    out.add_template("<|eot_id|>");
    ++next;
  }

  for (size_t i = next; i < msgs.size(); ++i) {
    const Message& m = msgs[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.tool_calls.empty()) {
      add_tool_call_turn(m, c.builtin_tools, where, out);
    } else if (m.role == "tool" || m.role == "ipython") {
      add_tool_result(m, where, out);
    } else {
      add_header(m.role, out);
      out.add_content(py_strip(text_content(m, where)));
      out.add_template("<|eot_id|>");
    }
  }
  if (c.add_generation_prompt) out.add_template("<|start_header_id|>assistant<|end_header_id|>\n\n");
  return out;
}

}  // namespace herd::chat
