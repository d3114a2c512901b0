// The communicator of one rank of a process group, for the backend the rank runs on: NCCL between
// GPUs, TCP between CPU ranks (docs/distributed.md). Beside the backend registry, since only this
// layer knows which backends and communicators were compiled in.
#pragma once

#include <chrono>
#include <memory>

#include "backend/backend.h"
#include "dist/communicator.h"
#include "dist/tcp-star.h"

namespace herd {

// bootstrap: the star that connected the group (TcpStar::connect); the communicator keeps it. Each rank
// waits at most `timeout` for the others in a collective. A CUDA backend in a build without NCCL is
// invalid input (after telling the other ranks so).
std::unique_ptr<Communicator> make_group_communicator(Backend& backend, std::unique_ptr<TcpStar> bootstrap,
                                                      std::chrono::milliseconds timeout);

}  // namespace herd
