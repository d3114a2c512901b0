// herd index build | search: a local document index for retrieval (docs/rag.md, docs/cli.md).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "terminal-text.h"

namespace herd_cli {
namespace {

struct BuildFlags {
  std::vector<std::string> paths;
  std::string output, model, max_file_size = "16MiB";
  int max_words = 200;
};

struct SearchFlags {
  std::string index, query;
  int k = 5;
  bool json = false;
};

std::string megabytes(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", double(bytes) / 1e6);
  return buf;
}

int run_build(const BuildFlags& f) {
  for (const std::string& p : f.paths) {
    std::error_code ec;
    if (!std::filesystem::exists(p, ec))
      return report(herd::Status::invalid_input(p + ": does not exist (herd index build takes files and directories)"));
  }
  herd::IndexOptions options;
  options.max_words = f.max_words;
  options.max_file_bytes = parse_size(f.max_file_size, "--max-file-size");
  std::unique_ptr<herd::Tokenizer> tokenizer;
  if (!f.model.empty()) {
    if (int rc = report(herd::Tokenizer::load(f.model, &tokenizer))) return rc;
    options.tokenizer = tokenizer.get();
  }
  std::unique_ptr<herd::DocumentIndex> index;
  if (int rc = report(herd::DocumentIndex::open(f.output, true, &index))) return rc;
  // A progress line on stderr every second (stdout carries only the summary).
  const auto start = std::chrono::steady_clock::now();
  auto last_line = start - std::chrono::seconds(1);
  options.progress = [&](int64_t done, int64_t total, int64_t bytes) {
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_line < std::chrono::seconds(1)) return;
    last_line = now;
    std::cerr << "indexing: " << done << "/" << total << " files, " << megabytes(bytes) << " read\n" << std::flush;
  };
  herd::IndexReport r;
  if (int rc = report(index->add_paths(f.paths, options, &r))) return rc;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ostringstream o;
  o << "files: " << r.added << " added, " << r.updated << " updated, " << r.unchanged << " unchanged, " << r.removed
    << " removed, " << r.skipped.size() << " skipped\n";
  for (const herd::IndexReport::Skipped& k : r.skipped)
    o << "skipped " << visible_text(k.path) << ": " << visible_text(k.reason) << "\n";
  char rate[64];
  std::snprintf(rate, sizeof rate, "%.2f s (%.1f MB/s)", s, s > 0 ? double(r.bytes_read) / 1e6 / s : 0.0);
  o << f.output << ": " << r.files << " files, " << r.passages << " passages (" << r.passages_written
    << " written now); read " << megabytes(r.bytes_read) << " in " << rate << "\n";
  std::cout << o.str() << std::flush;
  return 0;
}

int run_search(const SearchFlags& f) {
  std::unique_ptr<herd::DocumentIndex> index;
  if (int rc = report(herd::DocumentIndex::open(f.index, false, &index))) return rc;
  std::vector<herd::Passage> hits;
  if (int rc = report(index->search(f.query, f.k, &hits))) return rc;
  if (f.json) {
    nlohmann::ordered_json j = {{"query", f.query}, {"results", nlohmann::ordered_json::array()}};
    for (const herd::Passage& p : hits)
      j["results"].push_back({{"path", p.path}, {"line_begin", p.line_begin}, {"line_end", p.line_end},
                              {"score", p.score}, {"text", p.text}});
    std::cout << j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::ostringstream o;
  for (size_t i = 0; i < hits.size(); ++i) {
    const herd::Passage& p = hits[i];
    char score[32];
    std::snprintf(score, sizeof score, "%.3f", p.score);
    o << i + 1 << ". " << visible_text(p.path) << ":" << p.line_begin;
    if (p.line_end != p.line_begin) o << "-" << p.line_end;
    o << " (score " << score << ")\n";
    std::istringstream lines(visible_text(p.text, /*keep_lines=*/true));
    for (std::string line; std::getline(lines, line);) o << "   " << line << "\n";
  }
  if (hits.empty()) o << "no passage matches\n";
  std::cout << o.str() << std::flush;
  return 0;
}

}  // namespace

void add_index_commands(CLI::App& app, int& rc) {
  CLI::App* cmd = app.add_subcommand("index", "A local document index for retrieval (docs/rag.md): build, search");
  cmd->require_subcommand(1);

  auto b = std::make_shared<BuildFlags>();
  CLI::App* build = cmd->add_subcommand(
      "build", "Index text, Markdown, source and HTML files (directories recursively); a second run re-indexes only "
               "what changed and drops files that are gone");
  build->add_option("paths", b->paths, "Files and directories")->required();
  build->add_option("-o,--output", b->output, "The index file (SQLite), created when missing")->required();
  build->add_option("--max-words", b->max_words, "Budget of each passage: words (with -m, the model's tokens)")
      ->check(int_range(1, 1 << 20))
      ->capture_default_str();
  build->add_option("-m,--model", b->model, "Count the passage budget in this model's tokens (its tokenizer only)");
  build->add_option("--max-file-size", b->max_file_size, "Skip files larger than this, e.g. 16MiB")->capture_default_str();
  build->callback([b, &rc] { rc = run_build(*b); });

  auto s = std::make_shared<SearchFlags>();
  CLI::App* search = cmd->add_subcommand("search", "The passages that best match a query (BM25), best first");
  search->add_option("index", s->index, "The index file")->required();
  search->add_option("query", s->query, "Any text; it is never parsed as a query language")->required();
  search->add_option("-k", s->k, "How many passages")->check(int_range(1, 1000))->capture_default_str();
  search->add_flag("--json", s->json, "One JSON object: {query, results: [{path, line_begin, line_end, score, text}]}");
  search->callback([s, &rc] { rc = run_search(*s); });
}

}  // namespace herd_cli
