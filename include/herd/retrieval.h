// Retrieval over local documents (docs/rag.md): a document index that cuts text files (plain
// text, Markdown, source code, HTML) into passages, keeps them in an SQLite file with a full-text
// index, and returns the passages that best match a query (BM25). `herd index` builds and
// searches one; `herd chat --docs` grounds replies in it and answers brave_search from it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "herd/export.h"
#include "herd/status.h"
#include "herd/tokenizer.h"

namespace herd {

// One piece of a document, where it comes from, and how well it matched.
struct Passage {
  std::string path;                   // absolute path of the file
  int64_t line_begin = 0, line_end = 0;  // 1-based, inclusive, lines of the file on disk
  std::string text;
  double score = 0;  // higher is better; comparable only within one search
};

// Anything that finds passages for a query: the DocumentIndex below, or a caller's own (a vector
// store, a web search) for code that takes a Retriever.
class HERD_API Retriever {
 public:
  virtual ~Retriever();
  // At most k passages, best first; none (and ok) when nothing matches. Any text is a valid
  // query: it is never parsed as a query language.
  virtual Status search(std::string_view query, int k, std::vector<Passage>* out) const = 0;
};

struct IndexOptions {
  // Each passage's budget: whitespace-separated words, or the tokens of `tokenizer` when given.
  int max_words = 200;
  const Tokenizer* tokenizer = nullptr;  // must outlive add_paths
  int64_t max_file_bytes = 16 << 20;     // larger files are skipped
  // Called after each file with the files done, the files in all and the bytes read so far.
  std::function<void(int64_t done, int64_t total, int64_t bytes)> progress;
};

struct IndexReport {
  int64_t added = 0, updated = 0, unchanged = 0, removed = 0;  // files
  int64_t passages_written = 0, bytes_read = 0;
  struct Skipped {
    std::string path, reason;  // "binary (NUL bytes or invalid UTF-8)", "permission denied", ...
  };
  std::vector<Skipped> skipped;
  int64_t files = 0, passages = 0;  // in the index afterwards
};

// "path:12-20" (or "path:12" for one line): where a passage is, as a reply cites it.
HERD_API std::string passage_location(const Passage& passage);

// A user turn grounded in passages: an instruction to answer from the sources and cite them as
// [n], the sources numbered [1]..[n] with their locations, then the question (docs/rag.md has
// the exact text). `herd chat --docs` and `herd serve`'s retrieval extension build turns this way.
HERD_API std::string grounded_message(const std::string& question, const std::vector<Passage>& sources);

class HERD_API DocumentIndex : public Retriever {
 public:
  // Opens an index file; `writable` creates it when it does not exist. Refused with a message:
  // a missing file (read-only), a file that is not a herd index, an index written by a newer herd.
  static Status open(const std::string& path, bool writable, std::unique_ptr<DocumentIndex>* out);
  ~DocumentIndex() override;

  // Adds files and directories (recursively; names starting with '.' and symlinked directories
  // are skipped). Re-running re-indexes only files whose mtime or size changed and whose content
  // differs, and removes files that are gone. Binary, unreadable and oversized files are skipped
  // and listed in the report. Other processes may search the index meanwhile.
  Status add_paths(const std::vector<std::string>& paths, const IndexOptions& options, IndexReport* report);

  Status search(std::string_view query, int k, std::vector<Passage>* out) const override;

 private:
  struct Impl;
  explicit DocumentIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace herd
