// The bulkhead of one route (DESIGN.md §1, §3 `bulkhead`): at most max_in_flight
// calls at once, then a bounded FIFO queue; shared by every worker of the route.
#pragma once

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "airbag/config.h"

namespace airbag::policy {

class Bulkhead;

// One queued caller. The queue links through the waiter itself, so queueing
// allocates nothing. A waiter may be queued in one bulkhead at a time.
class BulkheadWaiter {
 public:
  // Called once the waiter owns a slot, from whichever thread released it and
  // outside the bulkhead's lock. Must be quick and must not call back into the
  // same bulkhead (the proxy posts a wake-up to the waiter's own worker).
  virtual void onGranted() = 0;

 protected:
  BulkheadWaiter() = default;
  ~BulkheadWaiter() = default;
  BulkheadWaiter(const BulkheadWaiter&) = delete;
  BulkheadWaiter& operator=(const BulkheadWaiter&) = delete;

 private:
  friend class Bulkhead;
  // Guarded by the mutex of the bulkhead the waiter is queued in.
  BulkheadWaiter* prev_ = nullptr;
  BulkheadWaiter* next_ = nullptr;
  const Bulkhead* queued_in_ = nullptr;
};

enum class BulkheadAdmit { kAdmitted, kQueued, kRejected };

// Thread-safe: one mutex per bulkhead, never held while calling a waiter.
class Bulkhead {
 public:
  explicit Bulkhead(const BulkheadConfig& config);
  Bulkhead(const Bulkhead&) = delete;
  Bulkhead& operator=(const Bulkhead&) = delete;
  // Precondition: nothing queued (the route's requests are gone).
  ~Bulkhead() = default;

  // kAdmitted: the caller owns a slot and must release() it.
  // kQueued: `w` waits in FIFO order; it gets onGranted() exactly once (then owns a
  //   slot) unless cancel(w) returns true first. The caller runs the queue_timeout
  //   timer and keeps `w` alive until it is granted or cancelled.
  // kRejected: full (also when `w` is null and no slot is free); counted in stats.
  // A free slot is never taken past a queued waiter: while anyone waits, every
  // released slot goes to the queue's head.
  BulkheadAdmit tryAcquire(BulkheadWaiter* w);

  // Gives a slot back. If someone waits, the slot passes to the first waiter,
  // whose onGranted() runs on this thread after the lock is dropped.
  void release();

  // Takes `w` out of the queue (queue timeout, client gone). True if it was still
  // queued: no slot, no onGranted. False if it was already granted: the caller
  // owns a slot and must release() it; onGranted has run or is running on the
  // releasing thread, so `w` must stay valid until that call has returned.
  bool cancel(BulkheadWaiter* w);

  // Takes new limits on hot reload, keeping the calls in flight and the queue.
  // A larger max_in_flight grants queued waiters at once (on this thread); a
  // smaller one lets the excess drain as calls end.
  void reconfigure(const BulkheadConfig& config);

  // How long a queued caller may wait (the caller's timer).
  absl::Duration queueTimeout() const;

  struct Stats {
    uint32_t in_flight = 0;
    uint32_t queued = 0;
    uint64_t rejected = 0;  // since construction
  };
  Stats stats() const;
  uint32_t inFlight() const;

 private:
  void pushBack(BulkheadWaiter* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  BulkheadWaiter* popFront() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void unlink(BulkheadWaiter* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  BulkheadConfig config_ ABSL_GUARDED_BY(mu_);
  uint32_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rejected_ ABSL_GUARDED_BY(mu_) = 0;
  BulkheadWaiter* head_ ABSL_GUARDED_BY(mu_) = nullptr;
  BulkheadWaiter* tail_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace airbag::policy
