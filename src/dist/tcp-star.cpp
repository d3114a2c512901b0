#include "dist/tcp-star.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <optional>
#include <limits>
#include <thread>

#include "common/check.h"

namespace herd {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kMagic[8] = {'H', 'E', 'R', 'D', '-', 'T', 'P', '1'};
constexpr uint64_t kMostMessageBytes = uint64_t(1) << 34;  // 16 GiB: far past any step's activations
constexpr size_t kMostHandshakeBytes = 4096;

enum Kind : uint8_t { kData = 0, kError = 1 };
struct Header {
  uint8_t kind;
  uint8_t pad[7];
  uint64_t nbytes;
};

std::string seconds(std::chrono::milliseconds t) { return str_cat(double(t.count()) / 1000.0, " s"); }

// Milliseconds left until `deadline` for poll(): -1 waits without a limit.
int poll_ms(const std::optional<Clock::time_point>& deadline) {
  if (!deadline) return -1;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()).count();
  return int(std::clamp<int64_t>(left, 0, std::numeric_limits<int>::max()));
}

// How a read ended: complete, the peer closed the connection, or the deadline passed.
enum class ReadEnd { done, closed, timed_out };

ReadEnd read_full(int fd, void* data, size_t n, const std::optional<Clock::time_point>& deadline) {
  auto* p = static_cast<uint8_t*>(data);
  while (n > 0) {
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, poll_ms(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return ReadEnd::timed_out;
    const ssize_t got = ::recv(fd, p, n, 0);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) return ReadEnd::closed;
    p += got;
    n -= size_t(got);
  }
  return ReadEnd::done;
}

// flags: MSG_DONTWAIT for a best-effort write that must not block on a peer that stopped reading.
bool write_full(int fd, const void* data, size_t n, int flags = 0) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t put = ::send(fd, p, n, MSG_NOSIGNAL | flags);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return false;
    p += put;
    n -= size_t(put);
  }
  return true;
}

bool write_frame(int fd, Kind kind, const void* data, size_t n, int flags = 0) {
  const Header h{kind, {}, n};
  return write_full(fd, &h, sizeof h, flags) && write_full(fd, data, n, flags);
}

// Small messages go out at once; keepalive notices a peer whose machine vanished.
void tune(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

// What each rank sends rank 0 first: who it is and what it runs.
std::vector<uint8_t> hello(int rank, int size, const std::string& fingerprint) {
  std::vector<uint8_t> h(16 + fingerprint.size());
  const int32_t words[2] = {int32_t(rank), int32_t(size)};
  std::memcpy(h.data(), kMagic, sizeof kMagic);
  std::memcpy(h.data() + 8, words, sizeof words);
  std::memcpy(h.data() + 16, fingerprint.data(), fingerprint.size());
  return h;
}

}  // namespace

TcpStar::~TcpStar() {
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

std::unique_ptr<TcpStar> TcpStar::connect(const LaunchEnv& env, const std::string& fingerprint,
                                          std::chrono::milliseconds timeout) {
  std::unique_ptr<TcpStar> star(new TcpStar(env.rank, env.world_size));
  if (env.world_size == 1) return star;
  HERD_REQUIRE(fingerprint.size() + 16 <= kMostHandshakeBytes, "the model's fingerprint is too long");
  const auto deadline = Clock::now() + timeout;
  const std::string where = str_cat(env.master_addr, ":", env.master_port);

  if (env.rank == 0) {
    const int listener = ::socket(AF_INET6, SOCK_STREAM, 0);
    HERD_REQUIRE(listener >= 0, "rank 0: cannot open a socket: ", std::strerror(errno));
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } close_listener{listener};
    const int one = 1, zero = 0;
    ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(listener, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // IPv4 peers too
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_any;
    addr.sin6_port = htons(uint16_t(env.master_port));
    HERD_REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "rank 0: cannot listen on port ",
                 env.master_port, " (MASTER_PORT): ", std::strerror(errno), "; pick a free port");
    HERD_REQUIRE(::listen(listener, env.world_size) == 0, "rank 0: cannot listen: ", std::strerror(errno));
    star->fds_.assign(size_t(env.world_size), -1);
    int joined = 1;
    while (joined < env.world_size) {
      pollfd pfd{listener, POLLIN, 0};
      const int ready = ::poll(&pfd, 1, poll_ms(deadline));
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) {
        std::string missing;
        for (int r = 1; r < env.world_size; ++r)
          if (star->fds_[size_t(r)] < 0) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
        fail_input("rank ", missing, " did not connect to rank 0 on port ", env.master_port, " within ", seconds(timeout),
                   ": check that every rank was started, with the same MASTER_ADDR and MASTER_PORT");
      }
      const int fd = ::accept(listener, nullptr, nullptr);
      if (fd < 0) continue;
      tune(fd);
      // The handshake: magic, rank, world size, fingerprint. A stranger (a port scan) is dropped.
      std::vector<uint8_t> h(kMostHandshakeBytes);
      Header head{};
      if (read_full(fd, &head, sizeof head, deadline) != ReadEnd::done || head.kind != kData ||
          head.nbytes < 16 || head.nbytes > kMostHandshakeBytes ||
          read_full(fd, h.data(), head.nbytes, deadline) != ReadEnd::done ||
          std::memcmp(h.data(), kMagic, sizeof kMagic) != 0) {
        ::close(fd);
        continue;
      }
      int32_t rank = 0, size = 0;
      std::memcpy(&rank, h.data() + 8, 4);
      std::memcpy(&size, h.data() + 12, 4);
      const std::string theirs(h.begin() + 16, h.begin() + std::ptrdiff_t(head.nbytes));
      std::string why;
      if (size != env.world_size)
        why = str_cat("rank ", rank, " was started with a world of ", size, " ranks, rank 0 with ", env.world_size);
      else if (rank < 1 || rank >= env.world_size || star->fds_[size_t(rank)] >= 0)
        why = str_cat("two processes claim rank ", rank, ", or it is outside the world of ", env.world_size);
      else if (theirs != fingerprint)
        why = str_cat("rank ", rank, " runs a different model or split (", theirs, ") than rank 0 (", fingerprint, ")");
      if (!why.empty()) {
        write_frame(fd, kError, why.data(), why.size(), MSG_DONTWAIT);
        ::close(fd);
        star->send_error(why);
        fail_input(why);
      }
      star->fds_[size_t(rank)] = fd;
      ++joined;
    }
    for (int r = 1; r < env.world_size; ++r) star->send(r, "ok", 2);
    return star;
  }

  // Every other rank: connect to rank 0, retrying while it starts.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(env.master_port);
  const int gai = ::getaddrinfo(env.master_addr.c_str(), port.c_str(), &hints, &found);
  HERD_REQUIRE(gai == 0, "rank ", env.rank, ": MASTER_ADDR ", env.master_addr, ": ", ::gai_strerror(gai));
  int fd = -1;
  while (fd < 0) {
    for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
      fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
      if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
        ::close(fd);
        fd = -1;
      }
    }
    if (fd >= 0) break;
    if (Clock::now() >= deadline) {
      ::freeaddrinfo(found);
      fail_input("rank ", env.rank, ": rank 0 did not answer at ", where, " within ", seconds(timeout),
                 ": check that it was started, and MASTER_ADDR and MASTER_PORT");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::freeaddrinfo(found);
  tune(fd);
  star->fds_ = {fd};
  const std::vector<uint8_t> h = hello(env.rank, env.world_size, fingerprint);
  HERD_REQUIRE(write_frame(fd, kData, h.data(), h.size()), "rank ", env.rank, ": rank 0 at ", where, " hung up");
  star->recv(0, 2, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()) +
                       std::chrono::milliseconds(1));
  return star;
}

void TcpStar::send(int peer, const void* data, size_t nbytes) {
  const int fd = fds_.at(size_t(rank_ == 0 ? peer : 0));
  HERD_CHECK(rank_ == 0 ? peer > 0 : peer == 0);
  if (fd < 0 || !write_frame(fd, kData, data, nbytes))
    throw Error(ErrorKind::internal, str_cat("rank ", peer, " hung up (did it exit?)"));
}

std::vector<uint8_t> TcpStar::recv(int peer, size_t nbytes, std::chrono::milliseconds timeout) {
  HERD_CHECK(rank_ == 0 ? peer > 0 : peer == 0);
  const int fd = fds_.at(size_t(rank_ == 0 ? peer : 0));
  std::optional<Clock::time_point> deadline;
  if (timeout.count() > 0) deadline = Clock::now() + timeout;
  auto fail = [&](ReadEnd end) -> Error {
    if (end == ReadEnd::timed_out)
      return Error(ErrorKind::internal, str_cat("rank ", peer, " sent nothing within ", seconds(timeout),
                                                ": it is stuck or its machine is unreachable"));
    return Error(ErrorKind::internal, str_cat("rank ", peer, " hung up (did it exit?)"));
  };
  if (fd < 0) throw fail(ReadEnd::closed);
  Header h{};
  if (const ReadEnd end = read_full(fd, &h, sizeof h, deadline); end != ReadEnd::done) throw fail(end);
  if (h.nbytes > kMostMessageBytes) throw Error(ErrorKind::internal, str_cat("rank ", peer, " sent a garbled message"));
  std::vector<uint8_t> data(size_t(h.nbytes));
  if (const ReadEnd end = read_full(fd, data.data(), data.size(), deadline); end != ReadEnd::done) throw fail(end);
  if (h.kind == kError) throw Error(ErrorKind::internal, std::string(data.begin(), data.end()));
  HERD_CHECK(nbytes == SIZE_MAX || data.size() == nbytes, "rank ", peer, " sent ", data.size(), " bytes, expected ",
             nbytes);
  return data;
}

void TcpStar::send_error(const std::string& why) {
  for (int& fd : fds_) {
    if (fd < 0) continue;
    write_frame(fd, kError, why.data(), why.size(), MSG_DONTWAIT);  // best effort: the peer may be gone
    ::close(fd);
    fd = -1;
  }
}

}  // namespace herd
