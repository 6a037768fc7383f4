// The circuit breaker of one route (DESIGN.md §1, §3 `circuit_breaker`): decides from
// results and `now` whether calls may reach the upstream. Shared by every worker.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "airbag/config.h"

namespace airbag::policy {

// Values are those of the airbag_circuit_state gauge.
enum class CircuitState { kClosed = 0, kOpen = 1, kHalfOpen = 2 };

// "closed" | "open" | "half_open": the `to` label of airbag_circuit_transitions_total.
std::string_view circuitStateLabel(CircuitState s);

// The admin override (POST /routes/{name}/circuit).
enum class CircuitOverride { kAuto, kForceOpen, kForceClosed };

// Semantics (resilience4j's, with its rough edges filed off):
//  - closed: every call is allowed. Trips to open after `consecutive_failures`
//    failures in a row (0 = off), or once the sliding `window` holds at least
//    `minimum_calls` results and failures/calls >= failure_rate, or (when
//    slow_call_rate < 1) slow/calls >= slow_call_rate. A slow call is a success
//    that took longer than slow_call_duration.
//  - open: every call is refused until the open duration has passed. The first
//    trip opens for `open_for`; each failed half-open round doubles it, capped at
//    `max_open_for`.
//  - half-open: at most `half_open_calls` probes in total per round, however many
//    callers race. All of them succeeding closes the breaker and forgets the past
//    (window, consecutive count, open duration); any probe failing reopens at once.
//    A probe that is slow counts as failed when slow-call tripping is on.
//  - A new round starts only once every probe of the previous round has reported
//    (result or abandon), so a result with probe=true always belongs to the round
//    that admitted it, and the number of probes outstanding never exceeds
//    half_open_calls. Results of non-probe calls (admitted while closed, finishing
//    later) feed the window and never the probe accounting.
//
// The window is a ring of kBuckets time buckets of window/kBuckets each; a result
// is forgotten between window - window/kBuckets and window after it was recorded.
//
// Thread-safe; allocates nothing after construction and never calls out while
// holding its mutex. Lock-free: tryAcquire while closed (one atomic load of the
// published state) or open before the open duration has passed; onResult of a
// non-probe call while closed (window buckets and the consecutive-failure count
// are atomics; the mutex is taken only when the result makes a trip due, and the
// trip is then confirmed under it); state(now), unless the breaker is open and
// its open duration has passed (the mutex then moves it to half-open and counts
// the transition). Everything else (half-open rounds,
// probes, overrides, reload, stats) runs under the mutex with the guarantees
// above. Approximations: a caller that read "closed" just before a trip is
// admitted as if it came before the trip (a plain call, never a probe); a
// reload's thresholds reach the lock-free trip check field by field, so one
// result at the moment of a reload may be judged by a mix of old and new values
// (a missed trip is caught by the next result); results recorded while a reload
// changes the window width may be counted against the old width or dropped.
class CircuitBreaker {
 public:
  static constexpr int kBuckets = 20;

  explicit CircuitBreaker(const CircuitBreakerConfig& config);
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  struct Permit {
    bool allowed = false;
    // True when the call is a half-open probe; pass it back to onResult/onAbandoned.
    bool probe = false;
    // When refused: how long until a probe may be admitted (the Retry-After of a
    // circuit_open reply). When that is not known (a round is already full, probes
    // of the previous round are still out, forced open) it is the configured
    // open_for for a forced open, else min(open_for, 1s). Zero when allowed.
    absl::Duration retry_after = absl::ZeroDuration();
  };

  // Asks to make one call at `now`. Every allowed call must later be reported
  // exactly once, through onResult or onAbandoned, with the permit's `probe`.
  Permit tryAcquire(absl::Time now);

  // Reports the verdict of an allowed call: `success` false for a failure
  // (5xx, timeout, reset, invalid answer...); `duration` is how long it took.
  void onResult(absl::Time now, bool success, absl::Duration duration, bool probe);

  // Reports that an allowed call ended without a verdict (the client left before
  // the answer). A probe's slot is given back to its round.
  void onAbandoned(bool probe);

  // The state as callers see it: overrides win; open reads half-open as soon as
  // the open duration has passed (and no probe of the previous round is out).
  CircuitState state(absl::Time now) const;

  // kForceOpen refuses every call; kForceClosed allows every call and keeps
  // recording results without ever tripping. Back to kAuto: from kForceOpen the
  // breaker starts with a half-open round; from kForceClosed it is closed with
  // the results recorded meanwhile, so it may trip on the next failure.
  void setOverride(CircuitOverride mode);
  CircuitOverride override() const;

  // Takes a new config on hot reload, keeping the state. A changed window clears
  // the recorded results; the open duration is clamped to [open_for, max_open_for].
  void reconfigure(const CircuitBreakerConfig& config);

  struct Stats {
    CircuitState state = CircuitState::kClosed;  // as state(now)
    // Results in the sliding window at `now`.
    uint64_t calls = 0;
    uint64_t failures = 0;
    uint64_t slow_calls = 0;
    uint32_t consecutive_failures = 0;
    absl::Duration until_half_open = absl::ZeroDuration();  // 0 unless open (auto)
    absl::Duration current_open_for = absl::ZeroDuration();
    uint32_t probes_in_flight = 0;  // of this round and of ended rounds not yet reported
    CircuitOverride override_mode = CircuitOverride::kAuto;
  };
  Stats stats(absl::Time now) const;

  // How many times the breaker, as seen through state(), entered `to` since it was
  // built: monotonic counters for airbag_circuit_transitions_total. The move to
  // half-open is counted when first observed by any call that takes `now`.
  uint64_t transitions(CircuitState to) const;

 private:
  // The counters of one window bucket, each a stamped counter
  // (policy/stamped_counter.h) tagged with the bucket's number.
  struct Bucket {
    std::atomic<uint64_t> calls{0};
    std::atomic<uint64_t> failures{0};
    std::atomic<uint64_t> slow{0};
  };
  struct WindowCounts {
    uint64_t calls = 0;
    uint64_t failures = 0;
    uint64_t slow = 0;
  };
  // State and override together, as lock-free readers see them.
  enum class Gate : uint8_t { kClosed, kOpen, kHalfOpen, kForcedClosed, kForcedOpen };

  // Lock-free: these read only atomics.
  int64_t bucketIndex(absl::Time now) const;
  void clearWindow();
  void record(int64_t idx, bool failure, bool slow);
  void countConsecutive(bool success);
  // Slow calls are summed only when asked: the trip check skips them while
  // slow-call tripping is off, which is the default.
  WindowCounts windowCounts(int64_t idx, bool with_slow) const;
  // Whether the consecutive count or the window's rates call for a trip.
  bool tripDue(int64_t idx) const;
  bool isSlow(bool success, absl::Duration duration) const;
  // With the published state open: true, with `at` set to when it may turn
  // half-open, while `now` is before that; false when only the mutex can tell
  // (the time has come, or the breaker resumes from a forced open).
  bool openUntil(absl::Time now, absl::Time* at) const;
  // Copies the thresholds the lock-free paths read from config_.
  void mirrorConfig() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Moves open -> half-open when due. Const because observers (state, stats) must
  // see and count the transition too; it only touches the mutable machine fields.
  void advance(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  CircuitState effective() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Publishes the state for lock-free readers, then counts a transition if the
  // effective state moved since last observed. Every change of the state, the
  // override or half_open_at_ ends with it, before the mutex is released.
  void observe() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void open(absl::Time now, absl::Duration for_how_long) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void close() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the current half-open round; its outstanding probes become orphans.
  void endRound() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration unknownWait() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Read by every call, written under mu_ only on a change of state or config.
  alignas(64) mutable std::atomic<Gate> gate_{Gate::kClosed};
  mutable std::atomic<int64_t> half_open_at_ns_;  // half_open_at_ in Unix ns (saturated)
  std::atomic<int64_t> bucket_ns_;                // width of one window bucket
  std::atomic<int64_t> slow_call_ns_;
  std::atomic<uint32_t> trip_consecutive_;
  std::atomic<uint32_t> minimum_calls_;
  std::atomic<double> failure_rate_;
  std::atomic<double> slow_call_rate_;
  // Written by failures (and by a success after a failure).
  alignas(64) std::atomic<uint32_t> consecutive_{0};
  // Written by every result.
  alignas(64) std::array<Bucket, kBuckets> buckets_;

  mutable absl::Mutex mu_;
  CircuitBreakerConfig config_ ABSL_GUARDED_BY(mu_);
  CircuitOverride override_ ABSL_GUARDED_BY(mu_) = CircuitOverride::kAuto;
  absl::Duration open_for_ ABSL_GUARDED_BY(mu_);  // the current open duration

  // The state machine; mutable so that advance() may run from const observers.
  mutable CircuitState state_ ABSL_GUARDED_BY(mu_) = CircuitState::kClosed;
  mutable CircuitState last_seen_ ABSL_GUARDED_BY(mu_) = CircuitState::kClosed;
  absl::Time half_open_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();  // when open
  mutable uint32_t round_admitted_ ABSL_GUARDED_BY(mu_) = 0;   // probes admitted this round
  mutable uint32_t round_in_flight_ ABSL_GUARDED_BY(mu_) = 0;  // of those, not reported yet
  mutable uint32_t round_succeeded_ ABSL_GUARDED_BY(mu_) = 0;
  mutable uint32_t orphans_ ABSL_GUARDED_BY(mu_) = 0;  // probes of ended rounds still out
  mutable std::array<uint64_t, 3> transitions_ ABSL_GUARDED_BY(mu_) = {0, 0, 0};
};

}  // namespace airbag::policy
