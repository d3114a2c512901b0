// A document's lines split into passages (chunker.h).
#include "rag/chunker.h"

#include <algorithm>

namespace herd::rag {
namespace {

bool blank(const std::string& line) { return line.find_first_not_of(" \t\f\v") == std::string::npos; }

// Collects lines into passages; blank lines between paragraphs become one empty line.
class Packer {
 public:
  Packer(const Document& doc, int64_t budget, const CountFn& count) : doc_(doc), budget_(budget), count_(count) {}

  // Lines [first, last] (0-based) as one paragraph; `section` when it starts with a heading.
  void paragraph(size_t first, size_t last, bool section) {
    const std::string text = join(first, last);
    const int64_t n = count_(text);
    if (section || (used_ > 0 && used_ + n > budget_)) flush();
    if (n <= budget_) {
      append(first, last, text, n);
      return;
    }
    for (size_t i = first; i <= last; ++i) {
      const int64_t m = count_(doc_.lines[i]);
      if (used_ > 0 && used_ + m > budget_) flush();
      if (m <= budget_) {
        append(i, i, doc_.lines[i], m);
        continue;
      }
      flush();
      const std::vector<std::string_view> w = words(doc_.lines[i]);
      split_line(i, w, 0, w.size());
    }
  }

  std::vector<Chunk> finish() {
    flush();
    return std::move(out_);
  }

 private:
  std::string join(size_t first, size_t last) const {
    std::string s;
    for (size_t i = first; i <= last; ++i) {
      if (i > first) s += '\n';
      s += doc_.lines[i];
    }
    return s;
  }

  static std::vector<std::string_view> words(std::string_view line) {
    std::vector<std::string_view> w;
    for (size_t i = 0; i < line.size();) {
      const size_t b = line.find_first_not_of(" \t", i);
      if (b == std::string_view::npos) break;
      const size_t e = std::min(line.find_first_of(" \t", b), line.size());
      w.push_back(line.substr(b, e - b));
      i = e;
    }
    return w;
  }

  // Words [b, e) of line i as passages of their own, halved until each fits.
  void split_line(size_t i, const std::vector<std::string_view>& w, size_t b, size_t e) {
    std::string text;
    for (size_t k = b; k < e; ++k) {
      if (k > b) text += ' ';
      text.append(w[k]);
    }
    if (e - b <= 1 || count_(text) <= budget_) {
      out_.push_back({int64_t(i) + 1, int64_t(i) + 1, std::move(text)});
      return;
    }
    split_line(i, w, b, b + (e - b) / 2);
    split_line(i, w, b + (e - b) / 2, e);
  }

  void append(size_t first, size_t last, const std::string& text, int64_t n) {
    if (used_ == 0 && text_.empty()) first_ = first;
    // Lines of one paragraph (split because it is over budget) follow each other; paragraphs
    // were apart, by blank lines, in the document.
    if (!text_.empty()) text_ += first == last_ + 1 ? "\n" : "\n\n";
    text_ += text;
    last_ = last;
    used_ += n;
  }

  void flush() {
    if (text_.find_first_not_of(" \t\n") != std::string::npos)
      out_.push_back({int64_t(first_) + 1, int64_t(last_) + 1, std::move(text_)});
    text_.clear();
    used_ = 0;
  }

  const Document& doc_;
  int64_t budget_;
  const CountFn& count_;
  std::vector<Chunk> out_;
  std::string text_;
  size_t first_ = 0, last_ = 0;
  int64_t used_ = 0;
};

}  // namespace

int64_t count_words(std::string_view text) {
  int64_t n = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

std::vector<Chunk> split_passages(const Document& doc, int64_t budget, const CountFn& count) {
  Packer packer(doc, std::max<int64_t>(budget, 1), count);
  for (size_t i = 0; i < doc.lines.size();) {
    if (blank(doc.lines[i])) {
      ++i;
      continue;
    }
    // A paragraph: to the next blank line or the next heading.
    size_t j = i;
    while (j + 1 < doc.lines.size() && !blank(doc.lines[j + 1]) && !doc.heading[j + 1]) ++j;
    packer.paragraph(i, j, doc.heading[i]);
    i = j + 1;
  }
  return packer.finish();
}

}  // namespace herd::rag
