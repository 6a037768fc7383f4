// The retry budget of one route (DESIGN.md §3 "retry.budget"), after
// Linkerd's model: retries may be `ratio` of the requests seen in a sliding
// window, plus a reserve of `min_per_second` retries per second that never accumulates.
#pragma once

#include <array>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "airbag/config.h"

namespace airbag::policy {

// Grants a retry, in this order:
//  1. against the ratio, while
//       ratio_retries_in_window + 1 <= ratio * requests_in_window
//     (both counted over a sliding window of kBuckets time buckets);
//  2. from the reserve, while the reserve retries granted in the current
//     wall-clock second are fewer than that second's reserve. Second k after
//     the first one the budget saw has a reserve of
//       ceil(m * (k + 1)) - ceil(m * k),   m = min_per_second,
//     so an integer m gives exactly m every second, m = 0.5 one every other
//     second (starting with the first), m = 2.5 alternately 3 and 2. What a
//     second leaves unused is lost, so over any T whole seconds the reserve
//     grants at most ceil(m * T) retries however the time is spent.
//  3. otherwise refuses.
// Thread-safe: one instance is shared by all workers of a route; each call
// holds a mutex for a few additions and never allocates. Time only moves
// forward: a `now` before the latest one seen is treated as that latest one.
class RetryBudget {
 public:
  static constexpr int kBuckets = 10;

  // `window` (the ratio's window) is split into kBuckets equal buckets;
  // counts expire a bucket at a time. The reserve is per second whatever the window.
  explicit RetryBudget(const RetryBudgetConfig& config, absl::Duration window = absl::Seconds(10));

  RetryBudget(const RetryBudget&) = delete;
  RetryBudget& operator=(const RetryBudget&) = delete;

  // Records one original request (not a retry) at `now`.
  void recordRequest(absl::Time now);

  // Returns true, and counts the retry, when the budget allows one more retry
  // at `now`; returns false and counts nothing otherwise.
  bool tryAcquireRetry(absl::Time now);

  struct Stats {
    uint64_t requests = 0;         // original requests in the window
    uint64_t retries = 0;          // retries granted in the window, both kinds
    uint64_t reserve_retries = 0;  // of `retries`, those granted from the reserve
    // Retries that would still be granted now: the ratio's whole retries left
    // plus the current second's reserve left. A whole number, never < 0.
    double allowed_now = 0;
  };
  // Returns the counts as of `now` (expiring old buckets first).
  Stats stats(absl::Time now);

  const RetryBudgetConfig& config() const { return config_; }
  absl::Duration window() const { return window_; }

 private:
  struct Bucket {
    int64_t index = 0;  // which bucket-width slice of time since the epoch it holds
    uint64_t requests = 0;
    uint64_t ratio_retries = 0;
    uint64_t reserve_retries = 0;
  };

  // Moves the window and the current second to `now`, dropping buckets that
  // fell out of the window, and returns the bucket `now` falls in.
  Bucket& advance(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Bucket& slot(int64_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whole retries the ratio still allows in the window.
  uint64_t ratioLeft() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The reserve of the k-th second after the first one seen (k >= 0).
  uint64_t reserveOf(int64_t k) const;

  const RetryBudgetConfig config_;
  const absl::Duration window_;
  const absl::Duration bucket_width_;
  const double ratio_;  // config ratio, clamped to >= 0
  // min_per_second in millionths, rounded down so the reserve never exceeds
  // the configured rate, split into whole and fractional parts.
  const uint64_t reserve_whole_;
  const int64_t reserve_millionths_;

  absl::Mutex mu_;
  std::array<Bucket, kBuckets> buckets_ ABSL_GUARDED_BY(mu_);
  int64_t current_ ABSL_GUARDED_BY(mu_) = 0;  // index of the newest bucket
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t requests_ ABSL_GUARDED_BY(mu_) = 0;  // sums over the live buckets
  uint64_t ratio_retries_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reserve_retries_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t first_second_ ABSL_GUARDED_BY(mu_) = 0;     // the first second seen
  int64_t second_ ABSL_GUARDED_BY(mu_) = 0;           // the current (latest) second
  uint64_t second_reserve_ ABSL_GUARDED_BY(mu_) = 0;  // reserveOf(second_ - first_second_)
  uint64_t second_used_ ABSL_GUARDED_BY(mu_) = 0;     // reserve retries granted in second_
};

}  // namespace airbag::policy
