// Communicator over a TcpStar: the collectives of CPU ranks that are separate processes, on one
// machine or several. Rank 0 gathers, sums (in rank order, as the thread group does) and sends the
// result back; simple, and for the CPU ranks' activation sizes the network is not the bottleneck.
#pragma once

#include <chrono>
#include <memory>

#include "dist/communicator.h"
#include "dist/tcp-star.h"

namespace herd {

// Rank 0 waits `timeout` for each other rank's part of a collective; the others wait for rank 0
// without a limit (an idle engine sends nothing), and learn of its end when the connection closes.
std::unique_ptr<Communicator> make_tcp_communicator(std::unique_ptr<TcpStar> star, std::chrono::milliseconds timeout);

}  // namespace herd
