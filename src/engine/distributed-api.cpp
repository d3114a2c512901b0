// herd/distributed.h: a process's place in a group from its environment, and the ranks that follow.
#include "herd/distributed.h"

#include <cstdlib>

#include "dist/launch-env.h"
#include "engine/guarded.h"
#include "engine/process-group.h"
#include "engine/tensor-parallel.h"
#include "model/model-dir.h"

namespace herd {

Status process_group_from_env(std::optional<ProcessGroup>* out) {
  return guarded([&] {
    out->reset();
    const std::optional<LaunchEnv> env = launch_env();
    if (!env) return;
    ProcessGroup g{env->world_size, env->rank, env->local_rank, env->master_addr, env->master_port};
    if (const char* t = std::getenv("HERD_TP_TIMEOUT")) {
      char* end = nullptr;
      const long s = std::strtol(t, &end, 10);
      HERD_REQUIRE(*t != '\0' && *end == '\0' && s > 0 && s <= 86400, "environment variable HERD_TP_TIMEOUT=\"", t,
                   "\" is not a number of seconds in [1, 86400]");
      g.timeout_s = int(s);
    }
    *out = g;
  });
}

Status run_follower_rank(const std::string& path, const ModelOptions& options, const ProcessGroup& group) {
  return guarded([&] {
    HERD_REQUIRE(group.world_size > 1 && group.rank > 0 && group.rank < group.world_size, "rank ", group.rank,
                 " of ", group.world_size, " is not a follower: rank 0 loads the model and leads");
    HERD_REQUIRE(options.tensor_parallel == 1 || options.tensor_parallel == group.world_size,
                 "a tensor-parallel degree of ", options.tensor_parallel, ", but the launcher started ",
                 group.world_size, " ranks: they must agree (one rank per process)");
    const ModelFiles files = load_model_files(path, options.meta_rope_factor, process_shard(group));
    const BackendOptions asked{options.device, options.n_threads, options.exact, kv_fp8_named(options.kv_dtype)};
    const std::unique_ptr<Backend> backend = make_backend(group_backend_options(asked, group));
    const std::unique_ptr<Communicator> comm =
        connect_process_group(group, files.config, files.weights, *backend, options.exact);
    follow_rank0(files.config, files.weights, *backend, *comm);
  });
}

}  // namespace herd
