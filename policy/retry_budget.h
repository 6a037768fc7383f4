// The retry budget of one route (DESIGN.md §3 "retry.budget"), after
// Linkerd's model: retries may be `ratio` of the requests seen in a sliding
// window, plus a reserve of `min_per_second` retries per second that never accumulates.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

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
// Thread-safe and lock-free: one instance is shared by all workers of a route.
// Each counter of each bucket is one atomic word holding the bucket's number
// (low 32 bits) beside its count; whoever first writes to a word whose number is
// stale starts it afresh in the same compare-and-swap, so no reset can lose a
// count or leak an old one. Time only moves forward: a `now` before the latest
// one seen is treated as that latest one.
//
// Exact while the window stays in one bucket: a ratio grant is a CAS on the
// current bucket's retry counter, which fails, and the window is summed again,
// if another retry was granted meanwhile. The reserve is exact always (one CAS
// on the current second's word). Where it is approximate: at a bucket boundary
// a caller who summed the window just before it moved may still grant into the
// old bucket while another grants into the new one, both against the same last
// retry left; so the ratio may be exceeded by at most one retry per caller inside
// tryAcquireRetry as the window moves. Likewise a request recorded as the window
// moves may land in the bucket before the new one. A bucket untouched for 2^31
// bucket widths (68 years with the default 1 s buckets) could be mistaken for a
// live one.
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
  // Each word is a stamped counter (policy/stamped_counter.h).
  struct Bucket {
    std::atomic<uint64_t> requests{0};
    std::atomic<uint64_t> ratio_retries{0};
    std::atomic<uint64_t> reserve_retries{0};
  };
  struct Sums {
    uint64_t requests = 0;
    uint64_t ratio_retries = 0;
    uint64_t reserve_retries = 0;
  };
  // Where `now` falls once time is kept from going back.
  struct Position {
    int64_t index;         // the bucket
    uint64_t second_word;  // reserve_second_ as seen, at this second or later
  };

  // Moves the newest bucket and the current second forward to `now` (never back).
  Position advance(absl::Time now);
  Bucket& slot(int64_t index);
  // Counts over the buckets live at `index` (and any newer one).
  Sums sumWindow(int64_t index) const;
  // Whole retries the ratio still allows with these counts.
  uint64_t ratioLeft(const Sums& sums) const;
  // The reserve of the k-th second after the first one seen (k >= 0).
  uint64_t reserveOf(int64_t k) const;

  const RetryBudgetConfig config_;
  const absl::Duration window_;
  const int64_t bucket_width_ns_;  // window_ / kBuckets, whole nanoseconds
  const double ratio_;  // config ratio, clamped to >= 0
  // min_per_second in millionths, rounded down so the reserve never exceeds
  // the configured rate, split into whole and fractional parts.
  const uint64_t reserve_whole_;
  const int64_t reserve_millionths_;

  // Read by every call, written once a bucket or a second.
  alignas(64) std::atomic<int64_t> first_second_;  // the first second seen, or unset
  std::atomic<int64_t> current_;                   // the newest bucket, or unset
  // The current second as seconds since first_second_ (high half) and the reserve
  // retries granted in it (low half).
  alignas(64) std::atomic<uint64_t> reserve_second_{0};
  alignas(64) std::array<Bucket, kBuckets> buckets_;
};

}  // namespace airbag::policy
