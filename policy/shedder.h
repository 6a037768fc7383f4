// Global load shedding by priority (DESIGN.md §1, §3 `shedding.max_in_flight`):
// one Shedder shared by every worker, consulted before any route-level work.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "airbag/config.h"

namespace airbag::policy {

// A reserve scheme over the process-wide count of requests in flight (all
// priorities together). With M = max_in_flight, a request is admitted while
//   optional:  in_flight < ceil(80% of M)
//   normal:    in_flight < ceil(95% of M), but never above M - 1
//   critical:  in_flight < M
// and optional never gets a higher limit than normal. So the last 20% of capacity
// is kept from optional traffic, and at least one slot is always kept for critical
// traffic (for M >= 2; with M = 1 there is nothing to reserve and all three limits
// are 1). Examples: M=1024 -> 820/973/1024; M=100 -> 80/95/100; M=10 -> 8/9/10;
// M=2 -> 1/1/2.
//
// Not done: a critical request displacing an optional one already admitted.
// Admission here is immediate (there is no queue to take a place from), and
// cancelling a running call would waste work the model has already started.
//
// Thread-safe and lock-free: admission is a compare-and-swap loop on the total in
// flight, so the limits are exact (no overshoot, and no refusal caused by another
// caller's attempt, which a fetch_add-then-undo would give and which would break
// the reserve: an optional caller backing out could make a critical one fail).
// M is one atomic word, so a reload is seen whole. stats() reads each counter on
// its own: while calls race, in_flight and the per-priority counts may disagree
// by the calls in between.
class Shedder {
 public:
  explicit Shedder(const SheddingConfig& config);
  Shedder(const Shedder&) = delete;
  Shedder& operator=(const Shedder&) = delete;

  // True: admitted, the caller must release(p) with the same priority when the
  // request ends. False: shed (counted), nothing to release.
  bool tryAdmit(Priority p);
  void release(Priority p);

  // Takes a new max_in_flight on hot reload; requests in flight stay counted.
  void reconfigure(const SheddingConfig& config);

  // The in-flight count at which requests of priority `p` start being shed.
  uint32_t limit(Priority p) const;

  struct Stats {
    uint32_t in_flight = 0;
    std::array<uint32_t, 3> in_flight_by_priority = {0, 0, 0};  // indexed by Priority
    std::array<uint64_t, 3> shed = {0, 0, 0};  // since construction, indexed by Priority
  };
  Stats stats() const;

 private:
  // Written by every admission and release: one cache line, apart from the
  // read-mostly limit and the shed counters.
  alignas(64) std::atomic<uint32_t> in_flight_{0};
  std::array<std::atomic<uint32_t>, 3> by_priority_ = {0, 0, 0};
  alignas(64) std::atomic<uint32_t> max_in_flight_;  // M, at least 1
  alignas(64) std::array<std::atomic<uint64_t>, 3> shed_ = {0, 0, 0};
};

}  // namespace airbag::policy
