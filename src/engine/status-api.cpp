// Names of Status codes, for logs and for servers that put them in error bodies.
#include "herd/status.h"

namespace herd {

const char* status_code_name(Status::Code code) {
  switch (code) {
    case Status::Code::ok: return "ok";
    case Status::Code::invalid_input: return "invalid_input";
    case Status::Code::not_found: return "not_found";
    case Status::Code::resource_exhausted: return "resource_exhausted";
    case Status::Code::cancelled: return "cancelled";
    case Status::Code::internal: return "internal";
  }
  return "?";
}

}  // namespace herd
