// The time seam. Policy code takes `now` as an argument; the proxy reads a
// Clock once per loop pass. Tests use SimulatedClock to move time by hand.
#pragma once

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace airbag {

class Clock {
 public:
  virtual ~Clock() = default;
  // Returns the current time. Thread-safe for the implementations here.
  virtual absl::Time now() const = 0;
};

class RealClock final : public Clock {
 public:
  absl::Time now() const override { return absl::Now(); }
};

// A clock that only moves when told to. Not thread-safe: single-threaded tests.
class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(absl::Time start = absl::UnixEpoch() + absl::Hours(24 * 365 * 50))
      : now_(start) {}
  absl::Time now() const override { return now_; }
  void advance(absl::Duration d) { now_ += d; }
  void set(absl::Time t) { now_ = t; }

 private:
  absl::Time now_;
};

}  // namespace airbag
