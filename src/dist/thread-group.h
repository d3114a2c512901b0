// A tensor-parallel group whose ranks are threads of one process, over host memory: the CPU
// implementation of Communicator, which lets the whole sharded forward run and be tested anywhere.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "dist/communicator.h"

namespace herd {

// One communicator per rank, index = rank; each is used by one thread. Tensors must be host memory
// (the CPU backend). Rank 0 leads: once it reaches a collective, the others have `timeout` to reach
// it too, or the group fails naming them. Ranks waiting for rank 0 wait without a limit (an idle
// engine), since rank 0's own failures abort the group.
std::vector<std::unique_ptr<Communicator>> make_thread_group(int size, std::chrono::milliseconds timeout);

}  // namespace herd
