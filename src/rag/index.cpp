// The document index in SQLite + FTS5 (index.h).
#include "rag/index.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <unordered_set>

#include "common/check.h"
#include "common/read-file.h"
#include "rag/fts-query.h"
#include "rag/text-extract.h"

namespace herd::rag {
namespace {

namespace fs = std::filesystem;

// One prepared statement; the Index's path names every failure.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& where, const char* sql) : db_(db), where_(where) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK) fail();
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v) { return check(sqlite3_bind_int64(s_, i, v)); }
  Stmt& bind(int i, std::string_view v) {
    return check(sqlite3_bind_text64(s_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  // True while there is a row.
  bool step() {
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) fail();
    return false;
  }
  void run() {
    step();
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  int64_t integer(int col) const { return sqlite3_column_int64(s_, col); }
  double real(int col) const { return sqlite3_column_double(s_, col); }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
    return p ? std::string(p, size_t(sqlite3_column_bytes(s_, col))) : std::string();
  }

 private:
  Stmt& check(int rc) {
    if (rc != SQLITE_OK) fail();
    return *this;
  }
  [[noreturn]] void fail() const {
    const int code = sqlite3_errcode(db_);
    const std::string msg = sqlite3_errmsg(db_);
    if (code == SQLITE_NOTADB) fail_input(where_, ": is not a herd document index (not an SQLite database)");
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
      fail_input(where_, ": is being written by another process (", msg, "); try again when it has finished");
    if (code == SQLITE_READONLY) fail_input(where_, ": cannot be written (", msg, ")");
    if (code == SQLITE_CORRUPT) fail_input(where_, ": is damaged (", msg, "); rebuild it");
    if (code == SQLITE_FULL) throw Error(ErrorKind::resource_exhausted, str_cat(where_, ": the disk is full"));
    throw Error(ErrorKind::internal, str_cat(where_, ": SQLite: ", msg));
  }

  sqlite3* db_;
  std::string where_;
  sqlite3_stmt* s_ = nullptr;
};

void exec(sqlite3* db, const std::string& where, const char* sql) {
  Stmt s(db, where, sql);
  while (s.step()) {
  }
}

int64_t query_int(sqlite3* db, const std::string& where, const char* sql) {
  Stmt s(db, where, sql);
  return s.step() ? s.integer(0) : 0;
}

constexpr const char* kSchema = R"(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, mtime_ns INTEGER NOT NULL,
                   size INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE TABLE passages(id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL, line_begin INTEGER NOT NULL,
                      line_end INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE INDEX passages_by_file ON passages(file_id);
CREATE VIRTUAL TABLE passages_fts USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');
)";

struct Candidate {
  std::string path;
  int64_t size = 0, mtime_ns = 0;
};

// Files under the given paths, sorted within each directory so that runs are reproducible.
class Walker {
 public:
  Walker(const IndexSettings& settings, std::set<std::string> own_files, UpdateReport* report)
      : settings_(settings), own_(std::move(own_files)), report_(report) {}

  void visit(const std::string& path, bool given) {
    struct stat st {};
    if (!given) {
      if (lstat(path.c_str(), &st) != 0) return skip(path, std::strerror(errno));
      if (S_ISLNK(st.st_mode)) {
        if (stat(path.c_str(), &st) != 0) return skip(path, "a broken symbolic link");
        if (S_ISDIR(st.st_mode)) return;  // not followed: a link may loop or leave the tree
      }
    } else if (stat(path.c_str(), &st) != 0) {
      return skip(path, errno == ENOENT ? "does not exist" : std::strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return directory(path);
    if (!S_ISREG(st.st_mode)) return skip(path, "not a regular file");
    if (own_.count(path)) return;
    if (uint64_t(st.st_size) > uint64_t(settings_.max_file_bytes))
      return skip(path, "larger than the limit of " + std::to_string(settings_.max_file_bytes) + " bytes");
    files.push_back({path, int64_t(st.st_size), int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec});
  }

  std::vector<Candidate> files;

 private:
  void directory(const std::string& path) {
    std::error_code ec;
    fs::directory_iterator it(path, ec), end;
    if (ec) return skip(path, "cannot be listed: " + ec.message());
    std::vector<std::string> names;
    for (; it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!name.empty() && name[0] != '.') names.push_back(name);
    }
    if (ec) skip(path, "cannot be listed to the end: " + ec.message());
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) visit(path == "/" ? "/" + name : path + "/" + name, false);
  }

  void skip(const std::string& path, std::string reason) { report_->skipped.push_back({path, std::move(reason)}); }

  const IndexSettings& settings_;
  std::set<std::string> own_;
  UpdateReport* report_;
};

// The absolute path without "." and ".." parts or a trailing '/'.
std::string normal_path(const std::string& path) {
  std::string p = fs::absolute(fs::path(path)).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

bool under(const std::string& path, const std::string& root) {
  return path == root || (path.starts_with(root) && (root == "/" || path[root.size()] == '/'));
}

// The reason in an Error from read_file, without the path it starts with.
std::string reason_of(const Error& e, const std::string& path) {
  std::string r = e.what();
  if (r.starts_with(path + ": ")) r.erase(0, path.size() + 2);
  return r;
}

}  // namespace

std::string content_hash(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

Index::Index(const std::string& path, bool writable) : path_(path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st) && !writable)
    throw Error(ErrorKind::not_found, str_cat(path, ": no such document index; build one first"));
  if (fs::is_directory(st)) fail_input(path, ": is a directory, not a document index");
  if (fs::exists(st) && !fs::is_regular_file(st)) fail_input(path, ": is not a regular file");
  const int flags = (writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY) |
                    SQLITE_OPEN_FULLMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    fail_input(path, ": cannot be opened (", msg, ")");
  }
  try {
    // Writers wait for each other; readers in WAL mode never wait for a writer.
    sqlite3_busy_timeout(db_, 10000);
    const int64_t version = query_int(db_, path_, "PRAGMA user_version");
    if (version > kSchemaVersion)
      fail_input(path_, ": was written by a newer herd (index schema ", version, "; this herd reads schema ",
                 kSchemaVersion, "); rebuild the index with this herd or use a newer one");
    if (version == 0) {
      if (query_int(db_, path_, "SELECT count(*) FROM sqlite_master") > 0)
        fail_input(path_, ": is an SQLite database but not a herd document index");
      if (!writable) fail_input(path_, ": is not a herd document index (it is empty)");
      exec(db_, path_, "PRAGMA journal_mode = WAL");
      exec(db_, path_, "BEGIN IMMEDIATE");
      char* err = nullptr;
      if (sqlite3_exec(db_, kSchema, nullptr, nullptr, &err) != SQLITE_OK) {
        const std::string msg = err ? err : "?";
        sqlite3_free(err);
        exec(db_, path_, "ROLLBACK");
        fail_input(path_, ": cannot create the index (", msg, ")");
      }
      exec(db_, path_, ("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str());
      exec(db_, path_, "COMMIT");
    }
    if (writable) {
      exec(db_, path_, "PRAGMA journal_mode = WAL");
      exec(db_, path_, "PRAGMA synchronous = NORMAL");
    }
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

Index::~Index() { sqlite3_close(db_); }

UpdateReport Index::update(const std::vector<std::string>& paths, const IndexSettings& settings) {
  UpdateReport report;
  std::set<std::string> own;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) own.insert(normal_path(path_) + suffix);
  Walker walker(settings, own, &report);
  std::vector<std::string> roots;
  for (const std::string& p : paths) {
    roots.push_back(normal_path(p));
    walker.visit(roots.back(), true);
  }
  const std::string chunking = settings.counter + ":" + std::to_string(settings.budget);
  std::string old_chunking;
  {
    Stmt s(db_, path_, "SELECT value FROM meta WHERE key = 'chunking'");
    if (s.step()) old_chunking = s.text(0);
  }
  const bool recut = old_chunking != chunking;

  Stmt find(db_, path_, "SELECT id, mtime_ns, size, hash FROM files WHERE path = ?1");
  Stmt touch(db_, path_, "UPDATE files SET mtime_ns = ?2, size = ?3 WHERE id = ?1");
  Stmt set_file(db_, path_, "UPDATE files SET mtime_ns = ?2, size = ?3, hash = ?4 WHERE id = ?1");
  Stmt add_file(db_, path_, "INSERT INTO files(path, mtime_ns, size, hash) VALUES (?1, ?2, ?3, ?4)");
  Stmt drop_fts(db_, path_, "DELETE FROM passages_fts WHERE rowid IN (SELECT id FROM passages WHERE file_id = ?1)");
  Stmt drop_passages(db_, path_, "DELETE FROM passages WHERE file_id = ?1");
  Stmt drop_file(db_, path_, "DELETE FROM files WHERE id = ?1");
  Stmt add_passage(db_, path_, "INSERT INTO passages(file_id, line_begin, line_end, hash) VALUES (?1, ?2, ?3, ?4)");
  Stmt add_text(db_, path_, "INSERT INTO passages_fts(rowid, text) VALUES (?1, ?2)");
  const auto forget = [&](int64_t id) {
    drop_fts.bind(1, id).run();
    drop_passages.bind(1, id).run();
  };

  // Committed in batches: readers see whole files, and an interrupted run keeps what it finished.
  exec(db_, path_, "BEGIN IMMEDIATE");
  bool open = true;
  try {
    std::unordered_set<std::string> seen;
    int64_t batch_bytes = 0, batch_files = 0;
    for (size_t i = 0; i < walker.files.size(); ++i) {
      const Candidate& c = walker.files[i];
      if (settings.progress) settings.progress(int64_t(i), int64_t(walker.files.size()), report.bytes_read);
      int64_t id = -1;
      std::string old_hash;
      if (find.bind(1, c.path).step()) {
        id = find.integer(0);
        old_hash = find.text(3);
        const bool same_stat = find.integer(1) == c.mtime_ns && find.integer(2) == c.size;
        find.reset();
        if (same_stat && !recut) {
          ++report.unchanged;
          seen.insert(c.path);
          continue;
        }
      } else {
        find.reset();
      }
      std::string bytes;
      try {
        bytes = read_file(c.path, uint64_t(settings.max_file_bytes), "a document");
      } catch (const Error& e) {
        report.skipped.push_back({c.path, reason_of(e, c.path)});
        continue;
      }
      report.bytes_read += int64_t(bytes.size());
      if (looks_binary(bytes)) {
        report.skipped.push_back({c.path, "binary (NUL bytes or invalid UTF-8)"});
        continue;
      }
      const std::string hash = content_hash(bytes);
      seen.insert(c.path);
      if (id >= 0 && hash == old_hash && !recut) {
        touch.bind(1, id).bind(2, c.mtime_ns).bind(3, c.size).run();
        ++report.unchanged;
        continue;
      }
      const std::string text = valid_utf8(bytes);
      const std::vector<Chunk> chunks = split_passages(extract(text, kind_of(c.path, text)), settings.budget,
                                                       settings.count);
      if (id >= 0) {
        forget(id);
        set_file.bind(1, id).bind(2, c.mtime_ns).bind(3, c.size).bind(4, hash).run();
        ++report.updated;
      } else {
        add_file.bind(1, c.path).bind(2, c.mtime_ns).bind(3, c.size).bind(4, hash).run();
        id = sqlite3_last_insert_rowid(db_);
        ++report.added;
      }
      for (const Chunk& chunk : chunks) {
        add_passage.bind(1, id).bind(2, chunk.line_begin).bind(3, chunk.line_end).bind(4, content_hash(chunk.text)).run();
        add_text.bind(1, sqlite3_last_insert_rowid(db_)).bind(2, chunk.text).run();
      }
      report.passages_written += int64_t(chunks.size());
      batch_bytes += int64_t(bytes.size());
      if (++batch_files >= 256 || batch_bytes >= (64 << 20)) {
        exec(db_, path_, "COMMIT");
        exec(db_, path_, "BEGIN IMMEDIATE");
        batch_bytes = batch_files = 0;
      }
    }
    if (settings.progress)
      settings.progress(int64_t(walker.files.size()), int64_t(walker.files.size()), report.bytes_read);
    // Gone: files that no longer exist, and those under a given path that were not indexed now.
    std::vector<std::pair<int64_t, std::string>> all;
    {
      Stmt s(db_, path_, "SELECT id, path FROM files");
      while (s.step()) all.emplace_back(s.integer(0), s.text(1));
    }
    for (const auto& entry : all) {
      const int64_t id = entry.first;
      const std::string& path = entry.second;  // a plain name: clang's C++20 lambdas cannot capture bindings
      if (seen.count(path)) continue;
      const bool in_roots = std::any_of(roots.begin(), roots.end(), [&](const std::string& r) { return under(path, r); });
      std::error_code ec;
      if (!in_roots && fs::is_regular_file(path, ec)) continue;
      forget(id);
      drop_file.bind(1, id).run();
      ++report.removed;
    }
    Stmt meta(db_, path_, "INSERT OR REPLACE INTO meta(key, value) VALUES ('chunking', ?1)");
    meta.bind(1, chunking).run();
    exec(db_, path_, "COMMIT");
    open = false;
  } catch (...) {
    if (open) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return report;
}

std::vector<Hit> Index::search(std::string_view text, int k) const {
  std::vector<Hit> hits;
  const FtsQuery query = fts_query(text);
  if (query.any.empty() || k <= 0) return hits;
  // Passages holding the exact phrase first, then the rest, each group by BM25.
  Stmt s(db_, path_,
         "SELECT f.path, p.line_begin, p.line_end, t.text, bm25(passages_fts) AS rank, "
         "t.rowid IN (SELECT rowid FROM passages_fts WHERE passages_fts MATCH ?3) AS exact "
         "FROM passages_fts t JOIN passages p ON p.id = t.rowid JOIN files f ON f.id = p.file_id "
         "WHERE passages_fts MATCH ?1 ORDER BY exact DESC, rank LIMIT ?2");
  s.bind(1, query.any).bind(2, int64_t(std::min(k, 1000))).bind(3, query.phrase);
  while (s.step()) hits.push_back({s.text(0), s.integer(1), s.integer(2), s.text(3), -s.real(4)});
  return hits;
}

int64_t Index::passage_count() const { return query_int(db_, path_, "SELECT count(*) FROM passages"); }
int64_t Index::file_count() const { return query_int(db_, path_, "SELECT count(*) FROM files"); }

}  // namespace herd::rag
