// The retry budget of one route (DESIGN.md §3 "retry.budget"), after
// Linkerd's model: retries may be at most `ratio` of the requests seen in a
// sliding window, plus a reserve of `min_per_second` retries per second.
#pragma once

#include <array>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "airbag/config.h"

namespace airbag::policy {

// Counts requests and retries in a sliding window of kBuckets time buckets
// and grants a retry while
//   retries_in_window + 1 <= ratio * requests_in_window + min_per_second * window_seconds.
// Thread-safe: one instance is shared by all workers of a route; each call
// holds a mutex for a few additions. Time only moves forward: a `now` before
// the latest one seen is treated as that latest one.
class RetryBudget {
 public:
  static constexpr int kBuckets = 10;

  // `window` is split into kBuckets equal buckets; counts expire a bucket at a time.
  explicit RetryBudget(const RetryBudgetConfig& config, absl::Duration window = absl::Seconds(10));

  RetryBudget(const RetryBudget&) = delete;
  RetryBudget& operator=(const RetryBudget&) = delete;

  // Records one original request (not a retry) at `now`.
  void recordRequest(absl::Time now);

  // Returns true, and counts the retry, when the budget allows one more retry
  // at `now`; returns false and counts nothing otherwise.
  bool tryAcquireRetry(absl::Time now);

  struct Stats {
    uint64_t requests = 0;   // original requests in the window
    uint64_t retries = 0;    // retries granted in the window
    double allowed_now = 0;  // retries that would still be granted now (>= 0)
  };
  // Returns the window's counts as of `now` (expiring old buckets first).
  Stats stats(absl::Time now);

  const RetryBudgetConfig& config() const { return config_; }
  absl::Duration window() const { return window_; }

 private:
  struct Bucket {
    int64_t index = 0;  // which bucket-width slice of time since the epoch it holds
    uint64_t requests = 0;
    uint64_t retries = 0;
  };

  // Moves the window to `now`, dropping buckets that fell out of it, and
  // returns the bucket `now` falls in.
  Bucket& advance(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Bucket& slot(int64_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ratio * requests + reserve: the most retries the window may hold.
  double limit() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RetryBudgetConfig config_;
  const absl::Duration window_;
  const absl::Duration bucket_width_;
  const double reserve_;  // min_per_second * window seconds

  absl::Mutex mu_;
  std::array<Bucket, kBuckets> buckets_ ABSL_GUARDED_BY(mu_);
  int64_t current_ ABSL_GUARDED_BY(mu_) = 0;  // index of the newest bucket
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t requests_ ABSL_GUARDED_BY(mu_) = 0;  // sums over the live buckets
  uint64_t retries_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace airbag::policy
