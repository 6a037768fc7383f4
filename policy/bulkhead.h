// The bulkhead of one route (DESIGN.md §1, §3 `bulkhead`): at most max_in_flight
// calls at once, then a bounded FIFO queue; shared by every worker of the route.
#pragma once

#include <atomic>
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
  // Called once the waiter owns a slot, from whichever thread passed it on (a
  // release, a reload, or a tryAcquire that found a slot freed while it queued),
  // with the bulkhead's lock held. Must be quick and must not call back into the
  // same bulkhead (the proxy posts a wake-up to the waiter's own worker). Because
  // the lock is held, once cancel() has returned no call to the waiter is
  // running, and the waiter may be destroyed.
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

// Thread-safe. The in-flight and queued counts share one atomic word, so the
// fast path (a slot free and nobody queued) is a single compare-and-swap that
// sees both at once, with no mutex; so is a release while nobody waits. The
// mutex is taken only when the queue is involved: queueing, cancel, a release
// while someone waits, reconfigure; it is never held while calling a waiter.
// While anyone is queued the fast paths stand aside, so every slot then moves
// under the mutex and goes to the queue's head. There is no overshoot:
// in_flight never exceeds max_in_flight (except after a shrinking reload), since
// every increment is a CAS that checks the limit.
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
  // whose onGranted() runs on this thread under the lock.
  void release();

  // Takes `w` out of the queue (queue timeout, client gone). True if it was still
  // queued: no slot, no onGranted. False if it was already granted: the caller
  // owns a slot and must release() it; onGranted has already run.
  bool cancel(BulkheadWaiter* w);

  // Takes new limits on hot reload, keeping the calls in flight and the queue.
  // A larger max_in_flight grants queued waiters at once (on this thread); a
  // smaller one lets the excess drain as calls end.
  void reconfigure(const BulkheadConfig& config);

  // How long a queued caller may wait (the caller's timer).
  absl::Duration queueTimeout() const;

  // Each field is read on its own, without the mutex: while calls race, the
  // three may be from slightly different moments.
  struct Stats {
    uint32_t in_flight = 0;
    uint32_t queued = 0;
    uint64_t rejected = 0;  // since construction
  };
  Stats stats() const;
  uint32_t inFlight() const;

 private:
  // Takes a slot if one is free and nobody is queued: true when in_flight went up.
  bool takeFreeSlot();
  // Grants queued waiters, head first, while a slot is free. Each onGranted runs
  // under the lock. Returns true if `self` was taken from the queue:
  // it then owns a slot and gets no onGranted.
  bool grantWhileFree(const BulkheadWaiter* self);
  // Links `w` at the tail; returns the count word as it was before.
  uint64_t pushBack(BulkheadWaiter* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  BulkheadWaiter* popFront() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void unlink(BulkheadWaiter* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Calls in flight in the low 32 bits, waiters queued in the high 32. The queued
  // half changes only under mu_; the in-flight half changes without it only
  // while the queued half is zero.
  alignas(64) std::atomic<uint64_t> counts_{0};
  // Read by every acquire, written only under mu_ (on reload).
  alignas(64) std::atomic<uint32_t> max_in_flight_;
  std::atomic<uint64_t> rejected_{0};

  mutable absl::Mutex mu_;
  BulkheadConfig config_ ABSL_GUARDED_BY(mu_);
  BulkheadWaiter* head_ ABSL_GUARDED_BY(mu_) = nullptr;
  BulkheadWaiter* tail_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace airbag::policy
