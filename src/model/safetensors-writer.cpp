#include "model/safetensors-writer.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <unistd.h>

#include "common/check.h"

namespace herd {

using nlohmann::json;

SafetensorsWriter::~SafetensorsWriter() {
  if (f_) std::fclose(f_);
}

void SafetensorsWriter::plan(const std::string& name, DType t, const Shape& shape) {
  HERD_CHECK(!planned_, "plan() after the first write");
  HERD_CHECK(!is_quantized(t) && t != DType::fp8 && t != DType::int4, dtype_name(t), " is not a safetensors type");
  Entry e{name, t, shape};
  e.nbytes = dtype_nbytes(t, shape_numel(shape));
  if (file_bytes_.empty() || (file_bytes_.back() > 0 && file_bytes_.back() + e.nbytes > max_file_bytes_))
    file_bytes_.push_back(0);
  e.file = file_bytes_.size() - 1;
  e.offset = file_bytes_.back();
  file_bytes_.back() += e.nbytes;
  entries_.push_back(std::move(e));
}

std::string SafetensorsWriter::file_name(size_t file) const {
  if (file_bytes_.size() == 1) return "model.safetensors";
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", file + 1, file_bytes_.size());
  return buf;
}

void SafetensorsWriter::open_file(size_t file) {
  json header = json::object();
  header["__metadata__"] = {{"format", "pt"}};
  for (const Entry& e : entries_)
    if (e.file == file)
      header[e.name] = {
          {"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {e.offset, e.offset + e.nbytes}}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned
  path_ = dir_ + "/" + file_name(file);
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  HERD_REQUIRE(fd >= 0, path_, ": cannot create: ", std::strerror(errno));
  f_ = ::fdopen(fd, "wb");
  if (!f_) {
    ::close(fd);
    fail_input(path_, ": cannot open for writing: ", std::strerror(errno));
  }
  std::setvbuf(f_, nullptr, _IOFBF, size_t(1) << 22);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
  HERD_REQUIRE(std::fwrite(len, 1, 8, f_) == 8 && std::fwrite(text.data(), 1, text.size(), f_) == text.size(), path_,
               ": write failed: ", std::strerror(errno));
}

void SafetensorsWriter::close_file() {
  const bool ok = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
  const int err = errno;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  HERD_REQUIRE(ok && closed, path_, ": write failed: ", std::strerror(err));
}

void SafetensorsWriter::write(const void* data, size_t n) {
  planned_ = true;
  HERD_CHECK(next_ < entries_.size(), "more tensors written than planned");
  const Entry& e = entries_[next_];
  HERD_CHECK(n == e.nbytes, "tensor ", e.name, ": ", n, " bytes, planned ", e.nbytes);
  if (!f_) open_file(e.file);
  if (n > 0)
    HERD_REQUIRE(std::fwrite(data, 1, n, f_) == n, path_, ": write failed: ", std::strerror(errno));
  ++next_;
  if (next_ == entries_.size() || entries_[next_].file != e.file) close_file();
}

void SafetensorsWriter::finish() {
  HERD_CHECK(next_ == entries_.size() && !f_, next_, " of ", entries_.size(), " tensors written");
  if (file_bytes_.size() <= 1) return;
  json index;
  uint64_t total = 0;
  for (uint64_t b : file_bytes_) total += b;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = json::object();
  for (const Entry& e : entries_) index["weight_map"][e.name] = file_name(e.file);
  const std::string path = dir_ + "/model.safetensors.index.json";
  std::ofstream f(path, std::ios::trunc);
  f << index.dump(2) << "\n";
  f.close();
  HERD_REQUIRE(f.good(), path, ": write failed");
}

}  // namespace herd
