// Jittered exponential backoff; see backoff.h.
#include "policy/backoff.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/random/distributions.h"

namespace airbag::policy {
namespace {

// Durations from the config may be negative or infinite only through a bug
// upstream of us; clamp so the arithmetic below never sees them.
int64_t toNanos(absl::Duration d) { return std::max<int64_t>(0, absl::ToInt64Nanoseconds(d)); }

}  // namespace

Backoff::Backoff(const BackoffConfig& config)
    : base_ns_(toNanos(config.base)),
      max_ns_(toNanos(config.max)),
      jitter_(config.jitter),
      prev_ns_(std::min(base_ns_, max_ns_)) {}

void Backoff::reset() {
  retries_ = 0;
  prev_ns_ = std::min(base_ns_, max_ns_);
}

int64_t Backoff::capNanos(int n) const {
  if (base_ns_ == 0) return 0;
  // base * 2^n <= max  <=>  base <= max >> n; shifting max right never overflows.
  if (n >= 63 || base_ns_ > (max_ns_ >> n)) return max_ns_;
  return base_ns_ << n;
}

absl::Duration Backoff::next(absl::BitGenRef gen) {
  const int n = retries_;
  if (retries_ < std::numeric_limits<int>::max()) ++retries_;
  int64_t ns = 0;
  switch (jitter_) {
    case Jitter::kFull: {
      ns = absl::Uniform<int64_t>(absl::IntervalClosedClosed, gen, 0, capNanos(n));
      break;
    }
    case Jitter::kEqual: {
      const int64_t half = capNanos(n) / 2;
      ns = half + absl::Uniform<int64_t>(absl::IntervalClosedClosed, gen, 0, half);
      break;
    }
    case Jitter::kDecorrelated: {
      const int64_t lo = std::min(base_ns_, max_ns_);
      // prev_ns_ <= max, so prev * 3 only overflows for a max above ~97 years.
      const int64_t hi = prev_ns_ > std::numeric_limits<int64_t>::max() / 3
                             ? std::numeric_limits<int64_t>::max()
                             : std::max(lo, prev_ns_ * 3);
      ns = std::min(max_ns_, absl::Uniform<int64_t>(absl::IntervalClosedClosed, gen, lo, hi));
      prev_ns_ = ns;
      break;
    }
    case Jitter::kNone: {
      ns = capNanos(n);
      break;
    }
  }
  return absl::Nanoseconds(ns);
}

}  // namespace airbag::policy
