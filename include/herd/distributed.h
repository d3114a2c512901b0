// One model over several processes, one tensor-parallel rank each, on one machine or several
// (docs/distributed.md). Every process runs the same program with the same model and options; the
// launcher's environment says which rank it is. Rank 0 loads the Model or Engine with
// options.process_group set and does the work; every other rank calls run_follower_rank.
#pragma once

#include <optional>
#include <string>

#include "herd/export.h"
#include "herd/model.h"
#include "herd/status.h"

namespace herd {

// From torchrun's WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, or Open MPI's
// OMPI_COMM_WORLD_SIZE, _RANK and _LOCAL_RANK (with MASTER_ADDR and MASTER_PORT exported), plus
// HERD_TP_TIMEOUT (seconds, default 300). *out stays empty when no world size is set. A variable with
// a bad value is invalid input naming it.
HERD_API Status process_group_from_env(std::optional<ProcessGroup>* out);

// A rank other than 0: loads this rank's shard of the model (mapping the files, copying only its
// slices), connects to rank 0, and runs the steps rank 0 sends until rank 0 stops the group (ok) or
// the group fails (an error naming the rank that failed and why).
HERD_API Status run_follower_rank(const std::string& path, const ModelOptions& options, const ProcessGroup& group);

}  // namespace herd
