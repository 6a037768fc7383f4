// Hedged tries (`routes[].hedge`): whether a hedge may go now, and the
// route's recent times to first byte that `after: p95` reads. Pure: time
// comes in as arguments.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace airbag::policy {

class RetryBudget;

// Why a hedge was or was not sent: the `result` label of
// airbag_hedges_total (with "won" and "lost", counted when a head arrives).
enum class HedgeVerdict {
  kSend,
  kSkippedDeadline,   // the request's deadline has passed
  kSkippedSaturated,  // the upstream says it is saturated
  kSkippedBreaker,    // the route's breaker is not closed
  kSkippedUnhealthy,  // the upstream is marked down
  kSkippedBudget,     // the retry budget has no retry left
};
std::string_view hedgeVerdictLabel(HedgeVerdict v);

struct HedgeInputs {
  absl::Time now;
  absl::Time deadline;
  bool saturated = false;
  bool breaker_closed = true;  // true also when the route has no breaker
  bool upstream_usable = true;
  bool body_replayable = true;  // the request body is held whole (always, today)
};

// Decides in the order of the verdicts above; only when every check passes
// is a retry taken from `budget` (a hedge spends the budget as a retry does).
HedgeVerdict decideHedge(const HedgeInputs& in, RetryBudget& budget);

// Recent times to first byte (the answer head) of one route, for
// `after: pNN`. Samples fall into log-spaced buckets (each 19% wider than the
// one before, 1 ms to about 55 s); the window is the current and the previous
// `period`. A percentile reads as the upper bound of its bucket, so a hedge
// goes a little late rather than early. Thread-safe (one mutex, held for a
// bucket increment or one pass over the buckets).
class LatencyWindow {
 public:
  static constexpr int kBuckets = 64;

  explicit LatencyWindow(absl::Duration period = absl::Seconds(10)) : period_(period) {}
  LatencyWindow(const LatencyWindow&) = delete;
  LatencyWindow& operator=(const LatencyWindow&) = delete;

  void add(absl::Duration latency, absl::Time now);
  // The `percentile` (50..99) of the samples in the window, or nullopt while
  // it holds fewer than minSamples(percentile).
  std::optional<absl::Duration> percentile(int percentile, absl::Time now) const;
  // Samples in the window as of `now`.
  uint64_t samples(absl::Time now) const;
  // max(20, 5 / (1 - q)): 20 for p50..p75, 100 for p95, 500 for p99, so the
  // percentile rests on at least five samples above it.
  static uint64_t minSamples(int percentile);
  // The upper bound of bucket `i`: 1 ms * 2^(i/4).
  static absl::Duration bucketBound(int i);

 private:
  using Counts = std::array<uint64_t, kBuckets>;
  // Moves the window to `now`'s period (never back). Requires mu_.
  void advance(int64_t epoch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t epochOf(absl::Time now) const;
  // The counts of the window as of `now`.
  Counts windowAt(absl::Time now) const;

  const absl::Duration period_;
  mutable absl::Mutex mu_;
  int64_t epoch_ ABSL_GUARDED_BY(mu_) = INT64_MIN;  // the current period's number
  Counts current_ ABSL_GUARDED_BY(mu_){};
  Counts previous_ ABSL_GUARDED_BY(mu_){};
};

}  // namespace airbag::policy
