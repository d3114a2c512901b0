// Opening the files a user names (configs, tokenizers, weights, texts) without trusting them.
// Only a regular file is opened: a FIFO would block forever, /dev/zero never ends, and a
// directory fails deep inside a stream with no name attached. Whole-file reads are capped per
// kind of file, checked against the size before a byte is read.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace herd {

inline constexpr uint64_t kMiB = uint64_t(1) << 20;
// config.json, generation_config.json, params.json, tokenizer_config.json, the safetensors
// index, conversations and tool lists: real ones are well under 1 MiB.
inline constexpr uint64_t kMaxJsonFileBytes = 64 * kMiB;
// tokenizer.json or tokenizer.model (GGUF vocabularies are mapped as models): Llama 3's
// tokenizer.json is 9 MB, the largest vocabularies' about 35 MB.
inline constexpr uint64_t kMaxTokenizerFileBytes = 512 * kMiB;
// Texts and JSONL data read whole: a text to score, eval task and results files.
inline constexpr uint64_t kMaxTextFileBytes = 1024 * kMiB;
inline constexpr uint64_t kNoSizeLimit = std::numeric_limits<uint64_t>::max();

// A regular file of at most max_bytes, open for reading; closed on destruction. Anything else
// is one invalid-input Error naming `path` and why: missing, unreadable (permission denied), a
// symlink loop, a directory, a FIFO, a device or socket, or larger than max_bytes (`what`, as
// "a JSON config", names the kind of file the limit is for).
class RegularFile {
 public:
  RegularFile(const std::string& path, uint64_t max_bytes, std::string_view what);
  ~RegularFile();
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
};

// The whole content of a file, with RegularFile's checks; the cap holds while reading too, for
// files whose size stat does not tell (/proc) or that grow under the reader.
std::string read_file(const std::string& path, uint64_t max_bytes, std::string_view what);

}  // namespace herd
