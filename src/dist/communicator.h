// What the ranks of a tensor-parallel group say to each other: the collectives one sharded forward
// needs (docs/distributed.md). Tensors live in the rank's backend memory; every rank calls every
// collective in the same order. A collective that cannot complete (a rank failed, or did not arrive
// in time) throws herd::Error on every rank; the group is then dead.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace herd {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // x = the element-wise sum of every rank's x, bit-identical on every rank. x: f32, any shape.
  virtual void all_reduce_sum(Tensor& x) = 0;
  // out = every rank's `in` back to back in rank order. in: [n...]; out: [size, n...], same dtype.
  virtual void all_gather(const Tensor& in, Tensor& out) = 0;
  // Host bytes from `root` to every rank (the step's control message); receivers' data is resized.
  virtual void broadcast_host(std::vector<uint8_t>& data, int root) = 0;
  // Fails the group: every rank's pending and later collective throws, naming `why`. Called by a
  // rank that cannot go on, so that the others stop instead of waiting for it.
  virtual void abort(const std::string& why) = 0;
};

}  // namespace herd
