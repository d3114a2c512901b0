// The API boundary's one translation: herd::Error (and anything else thrown) becomes a Status.
#pragma once

#include <exception>
#include <new>

#include "common/check.h"
#include "herd/status.h"

namespace herd {

template <typename Fn>
Status guarded(Fn&& fn) {
  try {
    fn();
    return Status::ok();
  } catch (const Error& e) {
    switch (e.kind()) {
      case ErrorKind::invalid_input: return Status::invalid_input(e.what());
      case ErrorKind::not_found: return Status::not_found(e.what());
      case ErrorKind::resource_exhausted: return Status::resource_exhausted(e.what());
      case ErrorKind::internal: break;
    }
    return Status::internal(e.what());
  } catch (const std::bad_alloc&) {
    return Status::internal("out of memory");
  } catch (const std::exception& e) {
    return Status::internal(e.what());
  }
}

}  // namespace herd
