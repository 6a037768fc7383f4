// Jittered exponential backoff between the tries of one request (DESIGN.md §3
// "retry.backoff"). Pure: randomness comes from the caller's generator.
#pragma once

#include <cstdint>

#include "absl/random/bit_gen_ref.h"
#include "absl/time/time.h"
#include "airbag/config.h"

namespace airbag::policy {

// The delays before successive retries of one request. One Backoff per
// request; not thread-safe (a request lives on one worker).
//
// For the n-th call of next() (n = 0 before the first retry), with
// cap(n) = min(max, base * 2^n):
//   full:         uniform[0, cap(n)]
//   equal:        cap(n)/2 + uniform[0, cap(n)/2]
//   decorrelated: min(max, uniform[base, prev * 3]), prev starting at base
//   none:         cap(n)
// Every result lies in [0, max] for any n; the arithmetic saturates rather
// than overflows. Draws are whole nanoseconds.
class Backoff {
 public:
  explicit Backoff(const BackoffConfig& config);

  // Returns the delay before the next retry and advances the sequence.
  absl::Duration next(absl::BitGenRef gen);

  // Starts the sequence over (as if no retry had been made).
  void reset();

  // Returns how many delays next() has handed out since construction or reset().
  int retries() const { return retries_; }

 private:
  // min(max, base * 2^n) in nanoseconds, saturating.
  int64_t capNanos(int n) const;

  int64_t base_ns_;
  int64_t max_ns_;
  Jitter jitter_;
  int retries_ = 0;
  int64_t prev_ns_;  // decorrelated: the previous delay
};

}  // namespace airbag::policy
