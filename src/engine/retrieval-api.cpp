// The public retrieval API (include/herd/retrieval.h) over src/rag: herd::Error becomes a Status,
// and a Tokenizer becomes the passage budget's counting function.
#include "common/check.h"
#include "engine/guarded.h"
#include "herd/retrieval.h"
#include "rag/index.h"

namespace herd {

Retriever::~Retriever() = default;

std::string passage_location(const Passage& p) {
  std::string s = p.path + ":" + std::to_string(p.line_begin);
  if (p.line_end != p.line_begin) s += "-" + std::to_string(p.line_end);
  return s;
}

std::string grounded_message(const std::string& question, const std::vector<Passage>& sources) {
  std::string s =
      "Answer the question using the sources below. Cite each source you use by its number, like [1]. "
      "If the sources do not hold the answer, say so.\n";
  for (size_t i = 0; i < sources.size(); ++i)
    s += "\n[" + std::to_string(i + 1) + "] " + passage_location(sources[i]) + "\n" + sources[i].text + "\n";
  return s + "\nQuestion: " + question;
}

struct DocumentIndex::Impl {
  std::unique_ptr<rag::Index> index;
};

DocumentIndex::DocumentIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DocumentIndex::~DocumentIndex() = default;

Status DocumentIndex::open(const std::string& path, bool writable, std::unique_ptr<DocumentIndex>* out) {
  return guarded([&] {
    auto impl = std::make_unique<Impl>();
    impl->index = std::make_unique<rag::Index>(path, writable);
    out->reset(new DocumentIndex(std::move(impl)));
  });
}

Status DocumentIndex::add_paths(const std::vector<std::string>& paths, const IndexOptions& options,
                                IndexReport* report) {
  return guarded([&] {
    HERD_REQUIRE(options.max_words >= 1, "the passage budget (max_words) must be at least 1, got ", options.max_words);
    HERD_REQUIRE(options.max_file_bytes >= 1, "the file size limit must be at least 1 byte");
    rag::IndexSettings s;
    s.budget = options.max_words;
    s.max_file_bytes = options.max_file_bytes;
    s.progress = options.progress;
    if (const Tokenizer* tok = options.tokenizer) {
      // Identified by its vocabulary size: a different tokenizer re-cuts every file.
      s.counter = "tokens(vocab " + std::to_string(tok->n_vocab()) + ")";
      s.count = [tok](std::string_view text) -> int64_t {
        std::vector<int32_t> ids;
        return tok->encode(text, false, false, &ids) ? int64_t(ids.size()) : rag::count_words(text);
      };
    }
    const rag::UpdateReport r = impl_->index->update(paths, s);
    *report = {};
    report->added = r.added;
    report->updated = r.updated;
    report->unchanged = r.unchanged;
    report->removed = r.removed;
    report->passages_written = r.passages_written;
    report->bytes_read = r.bytes_read;
    for (const rag::Skipped& k : r.skipped) report->skipped.push_back({k.path, k.reason});
    report->files = impl_->index->file_count();
    report->passages = impl_->index->passage_count();
  });
}

Status DocumentIndex::search(std::string_view query, int k, std::vector<Passage>* out) const {
  return guarded([&] {
    out->clear();
    for (rag::Hit& h : impl_->index->search(query, k))
      out->push_back({std::move(h.path), h.line_begin, h.line_end, std::move(h.text), h.score});
  });
}

}  // namespace herd
