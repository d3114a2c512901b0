// Where this process stands in a group of processes, one tensor-parallel rank each, as the launcher
// set it in the environment (docs/distributed.md): torchrun's WORLD_SIZE, RANK, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT, or Open MPI's OMPI_COMM_WORLD_SIZE, _RANK, _LOCAL_RANK (mpirun; the
// address and port of rank 0 then come from MASTER_ADDR and MASTER_PORT, exported with -x). Rank 0
// listens on MASTER_PORT, or MASTER_PORT + 1 under torchrun (whose own store holds MASTER_PORT), or
// on HERD_TP_PORT when set.
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace herd {

struct LaunchEnv {
  int world_size = 1;
  int rank = 0;
  int local_rank = 0;       // the rank within its machine: which GPU it drives
  std::string master_addr;  // rank 0's host
  int master_port = 0;      // where rank 0 listens for the others
};

// nullopt unless a world size is set. Invalid input, naming the variable, for a value that is not a
// number in range, a rank outside the world, or a group of several ranks without MASTER_ADDR and
// MASTER_PORT. getenv is injectable for tests.
std::optional<LaunchEnv> launch_env_from(const std::function<const char*(const char*)>& getenv);
std::optional<LaunchEnv> launch_env();  // from this process's environment

}  // namespace herd
