// What the request pipeline needs from the client connection it answers on.
// Implemented by server::ClientConnection; worker thread only.
#pragma once

#include <cstddef>
#include <string_view>

namespace airbag::pipeline {

class Downstream {
 public:
  // Sends bytes to the client: straight to the socket when nothing is queued
  // (write-first), the rest queued. `a`, `b`, `c` go out in that order.
  virtual void write(std::string_view a, std::string_view b = {}, std::string_view c = {}) = 0;
  // Bytes queued and not yet taken by the kernel.
  virtual size_t pendingBytes() const = 0;
  // True when the connection may stay open after this answer (the client asked
  // for keep-alive and the server is not draining).
  virtual bool keepAlive() const = 0;
  // The answer is complete. With `close`, the connection closes once flushed.
  // The exchange must not touch the request after this call.
  virtual void responseDone(bool close) = 0;
  // The answer cannot be completed: flush what was queued, then close, so the
  // client sees a cut answer rather than a clean end.
  virtual void responseAborted() = 0;

 protected:
  ~Downstream() = default;
};

}  // namespace airbag::pipeline
