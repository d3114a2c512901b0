#include "common/read-file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/check.h"

namespace herd {
namespace {

[[noreturn]] void fail_errno(const std::string& path, int err) {
  if (err == ENOENT) throw Error(ErrorKind::not_found, path + ": cannot open: no such file");
  if (err == ELOOP) fail_input(path, ": cannot open: too many levels of symbolic links (a symlink loop?)");
  if (err == EACCES) fail_input(path, ": cannot open: permission denied");
  fail_input(path, ": cannot open: ", std::strerror(err));
}

// Why a file that is not regular cannot be read, or "" when it is regular.
const char* not_regular(mode_t mode) {
  if (S_ISREG(mode)) return "";
  if (S_ISDIR(mode)) return "is a directory, not a file";
  if (S_ISFIFO(mode)) return "is a FIFO (named pipe), not a regular file";
  if (S_ISCHR(mode)) return "is a character device, not a regular file";
  if (S_ISBLK(mode)) return "is a block device, not a regular file";
  if (S_ISSOCK(mode)) return "is a socket, not a regular file";
  return "is not a regular file";
}

std::string over_limit(uint64_t max_bytes, std::string_view what) {
  if (max_bytes % kMiB == 0) return str_cat("more than the ", max_bytes / kMiB, " MiB allowed for ", what);
  return str_cat("more than the ", max_bytes, " bytes allowed for ", what);
}

}  // namespace

RegularFile::RegularFile(const std::string& path, uint64_t max_bytes, std::string_view what) {
  // stat first, so that nothing but a regular file is ever opened (opening a device can act).
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail_errno(path, errno);
  HERD_REQUIRE(S_ISREG(st.st_mode), path, ": ", not_regular(st.st_mode));
  // O_NONBLOCK: should the path turn into a FIFO after the stat, opening it cannot block.
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd_ < 0) fail_errno(path, errno);
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    fail_input(path, ": ", not_regular(st.st_mode));
  }
  size_ = uint64_t(st.st_size);
  if (size_ > max_bytes) {
    ::close(fd_);
    fail_input(path, ": ", size_, " bytes, ", over_limit(max_bytes, what));
  }
}

RegularFile::~RegularFile() { ::close(fd_); }

std::string read_file(const std::string& path, uint64_t max_bytes, std::string_view what) {
  const RegularFile file(path, max_bytes, what);
  std::string out(size_t(file.size()), '\0');
  size_t got = 0;
  for (;;) {
    if (got == out.size()) {
      // The size stat gave is used up: a last small read tells the end from a growing file.
      if (out.size() >= max_bytes) {
        char probe;
        const ssize_t n = ::read(file.fd(), &probe, 1);
        HERD_REQUIRE(n <= 0, path, ": grew to ", over_limit(max_bytes, what));
        break;
      }
      out.resize(std::min<uint64_t>(max_bytes, std::max<uint64_t>(2 * out.size(), 4096)));
    }
    const ssize_t n = ::read(file.fd(), out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_input(path, ": cannot read: ", std::strerror(errno));
    if (n == 0) break;
    got += size_t(n);
  }
  out.resize(got);
  return out;
}

}  // namespace herd
