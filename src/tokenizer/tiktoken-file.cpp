#include "tokenizer/tiktoken-file.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <vector>

#include "common/check.h"
#include "tokenizer/bpe-model.h"
#include "tokenizer/regex-split.h"

namespace herd::tok {
namespace {

constexpr int kNumSpecial = 256;

constexpr std::array<int8_t, 256> kBase64Value = [] {
  std::array<int8_t, 256> t{};
  t.fill(-1);
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(alphabet[i])] = static_cast<int8_t>(i);
  return t;
}();

// Standard base64 with '=' padding; false on anything else.
bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  if (in.empty() || in.size() % 4 != 0) return false;
  size_t n = in.size();
  size_t pad = 0;
  while (pad < 2 && n > 0 && in[n - 1] == '=') --n, ++pad;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; ++i) {
    const int v = kBase64Value[static_cast<uint8_t>(in[i])];
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return true;
}

}  // namespace

bool looks_like_tiktoken(std::string_view content) {
  const std::string_view line = content.substr(0, content.find('\n'));
  const size_t space = line.find(' ');
  if (space == std::string_view::npos || space == 0 || space + 1 == line.size()) return false;
  std::string bytes;
  int64_t rank = 0;
  const char* end = line.data() + line.size();
  if (!line.empty() && line.back() == '\r') --end;
  const auto r = std::from_chars(line.data() + space + 1, end, rank);
  return base64_decode(line.substr(0, space), bytes) && r.ec == std::errc{} && r.ptr == end;
}

std::string llama31_special_token(int k) {
  static const char* const kNamed[] = {
      "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
      "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
      "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"};
  constexpr int kNumNamed = sizeof kNamed / sizeof kNamed[0];
  if (k < kNumNamed) return kNamed[k];
  return str_cat("<|reserved_special_token_", k - 8, "|>");  // 128011 is _3, as in Hugging Face
}

std::unique_ptr<Model> load_tiktoken(std::string_view content, const std::string& source) {
  std::vector<std::pair<int64_t, std::string>> ranked;
  std::string bytes;
  size_t line_no = 0;
  for (size_t pos = 0; pos < content.size();) {
    size_t eol = content.find('\n', pos);
    if (eol == std::string_view::npos) eol = content.size();
    std::string_view line = content.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    int64_t rank = -1;
    const bool ok = space != std::string_view::npos && base64_decode(line.substr(0, space), bytes) &&
                    std::from_chars(line.data() + space + 1, line.data() + line.size(), rank).ptr ==
                        line.data() + line.size();
    HERD_REQUIRE(ok && rank >= 0, source, ": line ", line_no,
                 ": expected \"<base64 token> <rank>\" (a tiktoken BPE rank file)");
    ranked.emplace_back(rank, bytes);
  }
  HERD_REQUIRE(!ranked.empty(), source, ": no tokens in the tiktoken rank file");
  std::sort(ranked.begin(), ranked.end());
  TokenTable tokens;
  for (size_t i = 0; i < ranked.size(); ++i) {
    HERD_REQUIRE(ranked[i].first == static_cast<int64_t>(i), source, ": ranks must be 0..",
                 ranked.size() - 1, " with none missing or repeated, but rank ", i, " is ",
                 i > 0 && ranked[i].first == ranked[i - 1].first ? "repeated" : "missing");
    tokens.push_back(ranked[i].second);
  }
  const int32_t n_mergeable = tokens.size();
  for (int k = 0; k < kNumSpecial; ++k) tokens.push_back(llama31_special_token(k));
  const int32_t n_tokens = tokens.size();
  return std::make_unique<BpeModel>(std::move(tokens), id_range(n_mergeable, n_tokens), Pretokenizer{kLlama3Pattern},
                                    /*bos_id=*/n_mergeable, source);
}

}  // namespace herd::tok
