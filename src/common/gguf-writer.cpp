#include "common/gguf-writer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "common/check.h"
#include "common/gguf-file.h"

namespace herd {
namespace {

constexpr uint64_t kAlignment = 32;  // GGUF's default general.alignment

template <typename T>
void append(std::vector<uint8_t>& buf, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  buf.insert(buf.end(), p, p + sizeof v);
}

void append_string(std::vector<uint8_t>& buf, const std::string& s) {
  append<uint64_t>(buf, s.size());
  buf.insert(buf.end(), s.begin(), s.end());
}

}  // namespace

GgufWriter::~GgufWriter() {
  if (f_) std::fclose(f_);
}

void GgufWriter::key(const std::string& k, uint32_t type) {
  HERD_CHECK(!f_, "metadata after begin()");
  HERD_CHECK(std::find(keys_.begin(), keys_.end(), k) == keys_.end(), "key ", k, " added twice");
  keys_.push_back(k);
  append_string(kv_, k);
  append<uint32_t>(kv_, type);
  ++n_kv_;
}

void GgufWriter::add_string(const std::string& k, const std::string& v) {
  key(k, uint32_t(GgufType::string));
  append_string(kv_, v);
}
void GgufWriter::add_u32(const std::string& k, uint32_t v) {
  key(k, uint32_t(GgufType::u32));
  append(kv_, v);
}
void GgufWriter::add_i32(const std::string& k, int32_t v) {
  key(k, uint32_t(GgufType::i32));
  append(kv_, v);
}
void GgufWriter::add_f32(const std::string& k, float v) {
  key(k, uint32_t(GgufType::f32));
  append(kv_, v);
}
void GgufWriter::add_bool(const std::string& k, bool v) {
  key(k, uint32_t(GgufType::boolean));
  append<uint8_t>(kv_, v ? 1 : 0);
}
void GgufWriter::add_strings(const std::string& k, const std::vector<std::string>& v) {
  key(k, uint32_t(GgufType::array));
  append<uint32_t>(kv_, uint32_t(GgufType::string));
  append<uint64_t>(kv_, v.size());
  for (const std::string& s : v) append_string(kv_, s);
}
void GgufWriter::add_i32s(const std::string& k, const std::vector<int32_t>& v) {
  key(k, uint32_t(GgufType::array));
  append<uint32_t>(kv_, uint32_t(GgufType::i32));
  append<uint64_t>(kv_, v.size());
  for (int32_t x : v) append(kv_, x);
}

void GgufWriter::add_tensor(const std::string& name, DType t, const Shape& shape) {
  HERD_CHECK(!f_, "tensor info after begin()");
  Tensor info{name, t, shape};
  info.nbytes = dtype_nbytes(t, shape_numel(shape));
  if (!tensors_.empty()) {
    const uint64_t end = tensors_.back().offset + tensors_.back().nbytes;
    info.offset = (end + kAlignment - 1) / kAlignment * kAlignment;
  }
  tensors_.push_back(std::move(info));
}

void GgufWriter::put(const void* p, size_t n) {
  if (n == 0) return;
  HERD_REQUIRE(std::fwrite(p, 1, n, f_) == n, path_, ": write failed: ", std::strerror(errno));
  pos_ += n;
}

void GgufWriter::pad_to_alignment() {
  static const uint8_t zeros[kAlignment] = {};
  put(zeros, size_t((kAlignment - pos_ % kAlignment) % kAlignment));
}

void GgufWriter::begin(const std::string& path) {
  HERD_CHECK(!f_, "begin() twice");
  path_ = path;
  // O_EXCL: never overwrite what appeared at path after the caller checked.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  HERD_REQUIRE(fd >= 0, path, ": cannot create: ", std::strerror(errno));
  f_ = ::fdopen(fd, "wb");
  if (!f_) {
    ::close(fd);
    fail_input(path, ": cannot open for writing: ", std::strerror(errno));
  }
  std::setvbuf(f_, nullptr, _IOFBF, size_t(1) << 22);
  std::vector<uint8_t> head;
  head.insert(head.end(), {'G', 'G', 'U', 'F'});
  append<uint32_t>(head, 3);
  append<uint64_t>(head, tensors_.size());
  append<uint64_t>(head, n_kv_);
  put(head.data(), head.size());
  put(kv_.data(), kv_.size());
  std::vector<uint8_t>().swap(kv_);
  for (const Tensor& t : tensors_) {
    std::vector<uint8_t> info;
    append_string(info, t.name);
    append<uint32_t>(info, uint32_t(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) append<uint64_t>(info, uint64_t(*it));  // ne[0] first
    append<uint32_t>(info, ggml_type_id(t.dtype));
    append<uint64_t>(info, t.offset);
    put(info.data(), info.size());
  }
  pad_to_alignment();
  data_start_ = pos_;
}

void GgufWriter::write_tensor(const void* data, size_t n, bool last) {
  HERD_CHECK(f_ && next_ < tensors_.size(), "write_tensor without a tensor to write");
  const Tensor& t = tensors_[next_];
  if (written_ == 0) {
    pad_to_alignment();
    HERD_CHECK(pos_ == data_start_ + t.offset, "tensor ", t.name, " starts at ", pos_ - data_start_, ", planned ",
               t.offset);
  }
  put(data, n);
  written_ += n;
  if (last) {
    HERD_CHECK(written_ == t.nbytes, "tensor ", t.name, ": ", written_, " bytes written of ", t.nbytes);
    ++next_;
    written_ = 0;
  }
}

void GgufWriter::finish() {
  HERD_CHECK(f_ && next_ == tensors_.size(), next_, " of ", tensors_.size(), " tensors written");
  pad_to_alignment();  // llama.cpp and gguf-py pad the last tensor too
  const bool ok = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
  const int err = errno;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  HERD_REQUIRE(ok && closed, path_, ": write failed: ", std::strerror(err));
}

}  // namespace herd
