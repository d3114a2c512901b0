#include "dist/launch-env.h"

#include <charconv>
#include <cstdlib>
#include <string_view>

#include "common/check.h"

namespace herd {
namespace {

// The value of the first of `names` that is set, as an int in [lo, hi]; nullopt when none is set.
std::optional<int> int_var(const std::function<const char*(const char*)>& getenv,
                           std::initializer_list<const char*> names, int lo, int hi) {
  for (const char* name : names) {
    const char* v = getenv(name);
    if (v == nullptr) continue;
    const std::string_view s(v);
    int n = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    HERD_REQUIRE(ec == std::errc() && end == s.data() + s.size() && n >= lo && n <= hi, "environment variable ",
                 name, "=\"", s, "\" is not a number in [", lo, ", ", hi, "]");
    return n;
  }
  return std::nullopt;
}

}  // namespace

std::optional<LaunchEnv> launch_env_from(const std::function<const char*(const char*)>& getenv) {
  constexpr int kMostRanks = 4096;
  const std::optional<int> size = int_var(getenv, {"WORLD_SIZE", "OMPI_COMM_WORLD_SIZE"}, 1, kMostRanks);
  if (!size) return std::nullopt;
  LaunchEnv e;
  e.world_size = *size;
  e.rank = int_var(getenv, {"RANK", "OMPI_COMM_WORLD_RANK"}, 0, e.world_size - 1).value_or(0);
  e.local_rank = int_var(getenv, {"LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"}, 0, kMostRanks - 1).value_or(0);
  if (e.world_size > 1) {
    HERD_REQUIRE(getenv("RANK") || getenv("OMPI_COMM_WORLD_RANK"), "a group of ", e.world_size,
                 " ranks (WORLD_SIZE) needs RANK: each process's place in it");
    const char* addr = getenv("MASTER_ADDR");
    HERD_REQUIRE(addr && *addr, "a group of ", e.world_size,
                 " ranks needs MASTER_ADDR, the host of rank 0 (with mpirun: export it with -x MASTER_ADDR)");
    e.master_addr = addr;
    const std::optional<int> port = int_var(getenv, {"MASTER_PORT"}, 1, 65535);
    HERD_REQUIRE(port.has_value(), "a group of ", e.world_size,
                 " ranks needs MASTER_PORT, where rank 0 listens (with mpirun: export it with -x MASTER_PORT)");
    e.master_port = *port;
    // Under torchrun, MASTER_PORT is already taken by its own rendezvous store on rank 0's machine.
    if (getenv("TORCHELASTIC_RUN_ID")) {
      HERD_REQUIRE(e.master_port < 65535, "MASTER_PORT 65535 leaves no port for herd beside torchrun's; set HERD_TP_PORT");
      e.master_port += 1;
    }
    if (const std::optional<int> own = int_var(getenv, {"HERD_TP_PORT"}, 1, 65535)) e.master_port = *own;
  }
  return e;
}

std::optional<LaunchEnv> launch_env() {
  return launch_env_from([](const char* name) { return std::getenv(name); });
}

}  // namespace herd
