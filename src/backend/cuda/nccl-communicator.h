// The collectives of GPU ranks, one GPU each (a process per GPU under a launcher, or a thread per GPU
// in tests), over NCCL (docs/distributed.md). Tensors are the rank's CUDA backend's; every collective
// runs on that backend's stream, after its queued ops. No CUDA type appears here.
#pragma once

#include <chrono>
#include <memory>

#include "backend/backend.h"
#include "dist/communicator.h"
#include "dist/tcp-star.h"

namespace herd {

// Joins this rank's GPU to the group that `bootstrap` connected: rank 0 makes NCCL's unique id and
// sends it to every rank over the star, and each rank creates its NCCL communicator on the device of
// `cuda_backend` (made by make_cuda_backend). The star stays with the communicator and carries the
// host broadcasts and word of a failure, as between CPU ranks (make_tcp_communicator).
// Creation and every collective wait at most `timeout`, then fail the group naming what did not
// complete; a rank waiting for rank 0's next broadcast waits without a limit (an idle engine) and
// learns of rank 0's end from the star.
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<TcpStar> bootstrap, Backend& cuda_backend,
                                                     std::chrono::milliseconds timeout);

}  // namespace herd
