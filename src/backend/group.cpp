#include "backend/group.h"

#include "common/check.h"
#include "dist/tcp-communicator.h"

#ifdef HERD_WITH_CUDA
#include "backend/cuda/cuda-backend.h"
#endif
#ifdef HERD_WITH_NCCL
#include "backend/cuda/nccl-communicator.h"
#endif

namespace herd {

std::unique_ptr<Communicator> make_group_communicator(Backend& backend, std::unique_ptr<TcpStar> bootstrap,
                                                      std::chrono::milliseconds timeout) {
#ifdef HERD_WITH_CUDA
  if (is_cuda_backend(backend)) {
#ifdef HERD_WITH_NCCL
    return make_nccl_communicator(std::move(bootstrap), backend, timeout);
#else
    const std::string why = str_cat("rank ", bootstrap->rank(),
                                    ": GPU ranks talk over NCCL, and this herd was built without it: install NCCL "
                                    "(Debian: libnccl-dev) and rebuild, or run the group on the CPU");
    bootstrap->send_error(why);
    fail_input(why);
#endif
  }
#endif
  return make_tcp_communicator(std::move(bootstrap), timeout);
}

}  // namespace herd
