// The document index: passages of text files in an SQLite database with an FTS5 table (BM25
// ranking). One writer at a time adds or refreshes files; WAL mode lets readers search while it
// writes, each seeing the index as of its last commit. Errors are herd::Error naming the index
// file or the document.
//
// Schema (PRAGMA user_version = kSchemaVersion):
//   meta(key, value)                      "chunking": how passages were cut ("words:200", ...)
//   files(id, path, mtime_ns, size, hash) one row per indexed file; path is absolute
//   passages(id, file_id, line_begin, line_end, hash)
//   passages_fts(text)                    FTS5, rowid = passages.id
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rag/chunker.h"

struct sqlite3;

namespace herd::rag {

constexpr int kSchemaVersion = 1;

struct IndexSettings {
  int64_t budget = 200;         // per passage, in the units of `count`
  std::string counter = "words";  // names `count`; a change re-cuts every file
  CountFn count = count_words;
  int64_t max_file_bytes = 16 << 20;  // larger files are skipped
  // Called after each file: files done, files in all, bytes read so far.
  std::function<void(int64_t, int64_t, int64_t)> progress;
};

struct Skipped {
  std::string path, reason;
};

struct UpdateReport {
  int64_t added = 0, updated = 0, unchanged = 0, removed = 0;
  int64_t passages_written = 0, bytes_read = 0;
  std::vector<Skipped> skipped;
};

struct Hit {
  std::string path;
  int64_t line_begin = 0, line_end = 0;
  std::string text;
  double score = 0;  // BM25, higher is better
};

class Index {
 public:
  // Creates the database when `writable` and it does not exist. Refuses a database that is not a
  // herd index, or one from a newer schema.
  Index(const std::string& path, bool writable);
  ~Index();
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  // Files and directories (walked recursively; entries whose names start with '.' and symlinked
  // directories are left out). New and changed files are (re)indexed, unchanged ones (same mtime and
  // size, or else the same content hash) kept; indexed files that are gone, or that were under
  // a given directory and are no longer indexable, are removed.
  UpdateReport update(const std::vector<std::string>& paths, const IndexSettings& settings);

  // The k best passages for the user's text; none when it holds no word. Thread-safe.
  std::vector<Hit> search(std::string_view text, int k) const;

  int64_t passage_count() const;
  int64_t file_count() const;

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

// FNV-1a, 64 bits, as 16 hex digits: change detection, not a defence against forgery.
std::string content_hash(std::string_view bytes);

}  // namespace herd::rag
