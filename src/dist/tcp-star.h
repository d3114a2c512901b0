// The TCP connections of a process group, one between rank 0 and each other rank: how the ranks
// find each other at start-up (and hand over NCCL's unique id), and, for CPU ranks, the transport of
// their collectives. Rank 0 listens on MASTER_PORT; the others connect to MASTER_ADDR. A handshake
// checks that every rank runs the same world size and the same model split (its fingerprint).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/launch-env.h"

namespace herd {

class TcpStar {
 public:
  // Blocks until every rank is connected and agrees, or fails with one clear error: a rank that did
  // not connect within `timeout` (named), rank 0 unreachable, a different world size or fingerprint.
  static std::unique_ptr<TcpStar> connect(const LaunchEnv& env, const std::string& fingerprint,
                                          std::chrono::milliseconds timeout);
  ~TcpStar();
  TcpStar(const TcpStar&) = delete;
  TcpStar& operator=(const TcpStar&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }

  // One message to `peer` (rank 0: any other rank; the others: only rank 0).
  void send(int peer, const void* data, size_t nbytes);
  // The next message from `peer`, which must be `nbytes` long (nbytes = SIZE_MAX: any length,
  // returned in full). Waits at most `timeout` (zero: without a limit). A peer that sent an error
  // (send_error), hung up, or stayed silent too long makes this throw, naming it.
  std::vector<uint8_t> recv(int peer, size_t nbytes, std::chrono::milliseconds timeout);
  // Tells the peers why this rank stops, best effort, and closes every connection.
  void send_error(const std::string& why);

 private:
  TcpStar(int rank, int size) : rank_(rank), size_(size) {}
  int rank_, size_;
  std::vector<int> fds_;  // rank 0: index = peer rank (fds_[0] unused); others: fds_[0] = rank 0
};

}  // namespace herd
