#include "engine/process-group.h"

#include <chrono>

#include "backend/group.h"
#include "common/check.h"
#include "dist/tcp-star.h"

namespace herd {

std::optional<Shard> process_shard(const std::optional<ProcessGroup>& group) {
  if (!group || group->world_size < 2) return std::nullopt;
  return Shard{group->rank, group->world_size};
}

BackendOptions group_backend_options(const BackendOptions& asked, const ProcessGroup& group) {
  BackendOptions o = asked;
  o.cuda_device = group.local_rank;
  return o;
}

std::unique_ptr<Communicator> connect_process_group(const ProcessGroup& group, const ModelConfig& c,
                                                    const HostWeights& w, Backend& backend, bool exact) {
  HERD_REQUIRE(group.timeout_s > 0, "the process group's timeout must be positive, got ", group.timeout_s);
  const LaunchEnv env{group.world_size, group.rank, group.local_rank, group.master_addr, group.master_port};
  const std::string kind = backend.name().starts_with("cuda") ? "cuda" : exact ? "cpu exact" : "cpu";
  const std::string fingerprint =
      str_cat(c.n_layer, " layers, ", c.n_embd, " wide, ", c.n_head, "/", c.n_head_kv, " heads, FFN ", c.n_ff,
              ", vocabulary ", c.n_vocab, ", ",
              dtype_name(w.layers.empty() ? w.tok_embd.dtype : w.layers[0].w_up.dtype), " weights, ",
              group.world_size, " ranks on ", kind);
  const std::chrono::milliseconds timeout{int64_t(group.timeout_s) * 1000};
  return make_group_communicator(backend, TcpStar::connect(env, fingerprint, timeout), timeout);
}

}  // namespace herd
