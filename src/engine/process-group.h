// A model's ranks as processes (herd/distributed.h): what rank 0's loader and the other ranks'
// run_follower_rank share, so that both sides connect and check each other the same way.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "backend/backend.h"
#include "dist/communicator.h"
#include "herd/model.h"
#include "model/config.h"
#include "model/shard.h"
#include "model/weights.h"

namespace herd {

// This process's rank of the model's split when it is one of several processes: the loaders then
// read only its slices (model-dir.h). nullopt without a group of two or more.
std::optional<Shard> process_shard(const std::optional<ProcessGroup>& group);

// The backend a rank of `group` runs on: its local rank's GPU; on the CPU, all of the given threads
// (each process has its own machine's share).
BackendOptions group_backend_options(const BackendOptions& asked, const ProcessGroup& group);

// Connects this rank to the others (rank 0 waits for all of them) and returns its communicator: NCCL
// for a CUDA backend, TCP for the CPU (backend/group.h). Every rank must load the same model the same way: a fingerprint
// of the config, the stored types and the backend is compared at the handshake.
std::unique_ptr<Communicator> connect_process_group(const ProcessGroup& group, const ModelConfig& c,
                                                    const HostWeights& w, Backend& backend, bool exact);

}  // namespace herd
