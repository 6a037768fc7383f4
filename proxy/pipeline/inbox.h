// The one way into a worker from another thread (memcached's thread.c way):
// a queue of small messages plus one wake-up of the worker's loop. A bulkhead
// slot freed on another worker, a cache fill completed by another request, a
// new config snapshot, a drain or stop order all arrive here; nothing else
// crosses threads, so the worker's loop needs no locks of its own.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace airbag::pipeline {

struct InboxMessage {
  enum class Kind : uint8_t {
    kWake,      // wake the exchange in `slot` if it is still on `generation`
    kSnapshot,  // a new config snapshot is waiting
    kDrain,     // stop accepting, finish what is in flight
    kStop,      // end the loop now
  };
  Kind kind = Kind::kWake;
  uint32_t slot = 0;
  uint64_t generation = 0;
};

class Inbox {
 public:
  Inbox();
  ~Inbox();
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;

  // Thread-safe and cheap enough to call under another lock (it takes only
  // its own, a leaf): queues `m` and wakes the owner's loop.
  void post(InboxMessage m);

  // Owner thread: moves every message posted so far into `out` (cleared
  // first) and consumes the wake-up.
  void take(std::vector<InboxMessage>* out);

  // The descriptor the owner's loop watches for readability (an eventfd).
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  absl::Mutex mu_;
  std::vector<InboxMessage> queue_ ABSL_GUARDED_BY(mu_);
  bool signalled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace airbag::pipeline
