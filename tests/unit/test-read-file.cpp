// Opening untrusted files: only regular files, within a size cap, each refusal one line naming
// the file and the reason; nothing blocks on a FIFO or reads /dev/zero forever.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/check.h"
#include "common/mmap.h"
#include "common/read-file.h"

namespace fs = std::filesystem;

namespace herd {
namespace {

class ReadFile : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("herd-read-file-" + std::to_string(::getpid()) + "-" +
                                        testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    fs::permissions(dir_, fs::perms::owner_all);
    fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

// The message of the caller's-fault Error (bad input or a missing file) that fn throws.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_NE(e.kind(), ErrorKind::internal);
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return msg;
  }
  ADD_FAILURE() << "no error";
  return "";
}

std::string read_error(const std::string& p, uint64_t cap = kMaxJsonFileBytes) {
  return error_of([&] { read_file(p, cap, "a JSON config"); });
}

TEST_F(ReadFile, ReadsARegularFileWhole) {
  std::ofstream(path("a.json"), std::ios::binary) << "{\"x\": 1}\n";
  EXPECT_EQ(read_file(path("a.json"), kMaxJsonFileBytes, "a JSON config"), "{\"x\": 1}\n");
  std::ofstream(path("empty"), std::ios::binary);
  EXPECT_EQ(read_file(path("empty"), kMaxJsonFileBytes, "a JSON config"), "");
  fs::create_symlink("a.json", path("link"));  // a link to a regular file is that file
  EXPECT_EQ(read_file(path("link"), kMaxJsonFileBytes, "a JSON config"), "{\"x\": 1}\n");
}

TEST_F(ReadFile, ReadsFilesWhoseSizeStatDoesNotTell) {
  // /proc files are regular with st_size 0, yet have content.
  const std::string status = read_file("/proc/self/status", kMaxJsonFileBytes, "a text");
  EXPECT_NE(status.find("Name:"), std::string::npos);
  EXPECT_NE(error_of([] { read_file("/proc/self/status", 16, "a text"); }).find("/proc/self/status: grew to more than"),
            std::string::npos);
}

TEST_F(ReadFile, RefusesWhatIsNotARegularFile) {
  fs::create_directory(path("dir"));
  EXPECT_EQ(read_error(path("dir")), path("dir") + ": is a directory, not a file");
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);  // opening it for reading would block
  EXPECT_EQ(read_error(path("fifo")), path("fifo") + ": is a FIFO (named pipe), not a regular file");
  EXPECT_EQ(read_error("/dev/zero"), "/dev/zero: is a character device, not a regular file");
  fs::create_symlink("/dev/zero", path("zero.json"));
  EXPECT_EQ(read_error(path("zero.json")), path("zero.json") + ": is a character device, not a regular file");
  fs::create_symlink("loop-b", path("loop-a"));
  fs::create_symlink("loop-a", path("loop-b"));
  EXPECT_EQ(read_error(path("loop-a")),
            path("loop-a") + ": cannot open: too many levels of symbolic links (a symlink loop?)");
  EXPECT_EQ(read_error(path("missing")), path("missing") + ": cannot open: no such file");
  try {
    read_file(path("missing"), 100, "a JSON config");
    ADD_FAILURE() << "a missing file was read";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::not_found);
  }
  fs::create_symlink("missing", path("dangling"));
  EXPECT_EQ(read_error(path("dangling")), path("dangling") + ": cannot open: no such file");
}

TEST_F(ReadFile, RefusesAFileOverItsCapBeforeReading) {
  std::ofstream(path("big"), std::ios::binary) << std::string(100, 'x');
  EXPECT_EQ(read_error(path("big"), 99), path("big") + ": 100 bytes, more than the 99 bytes allowed for a JSON config");
  EXPECT_EQ(read_file(path("big"), 100, "a JSON config").size(), 100u);
  fs::resize_file(path("big"), kMaxJsonFileBytes + 1);  // sparse
  EXPECT_EQ(read_error(path("big")),
            path("big") + ": 67108865 bytes, more than the 64 MiB allowed for a JSON config");
}

TEST_F(ReadFile, RefusesAnUnreadableFile) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads every file";
  std::ofstream(path("secret"), std::ios::binary) << "{}";
  fs::permissions(path("secret"), fs::perms::none);
  EXPECT_EQ(read_error(path("secret")), path("secret") + ": cannot open: permission denied");
  fs::permissions(dir_, fs::perms::none);
  EXPECT_EQ(read_error(path("secret")), path("secret") + ": cannot open: permission denied");
}

TEST_F(ReadFile, MappedFilesAreRegularFilesToo) {
  ASSERT_EQ(::mkfifo(path("model.safetensors").c_str(), 0600), 0);
  EXPECT_EQ(error_of([&] { MappedFile f(path("model.safetensors")); }),
            path("model.safetensors") + ": is a FIFO (named pipe), not a regular file");
  EXPECT_EQ(error_of([] { MappedFile f("/dev/zero"); }), "/dev/zero: is a character device, not a regular file");
  fs::create_directory(path("x.gguf"));
  EXPECT_EQ(error_of([&] { MappedFile f(path("x.gguf")); }), path("x.gguf") + ": is a directory, not a file");
}

}  // namespace
}  // namespace herd
