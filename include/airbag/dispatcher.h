// The time seam of the request path: one clock and the timers that run on it.
// The proxy's implementation runs timers on a worker's libevent loop
// (proxy/pipeline/event_dispatcher.h); tests use a simulated one whose time
// moves only when told, so a pipeline test fires a deadline by moving the
// clock, not by sleeping. Worker thread only; nothing here is thread-safe.
#pragma once

#include <memory>

#include "absl/time/time.h"

namespace airbag {

// Receives a timer's expiry.
class TimerCallback {
 public:
  virtual void onTimer() = 0;

 protected:
  ~TimerCallback() = default;
};

// A one-shot timer that can be armed again. Destroying it disarms it.
class Timer {
 public:
  virtual ~Timer() = default;
  // Calls onTimer() once, at or after `at` (never before: an implementation
  // on a coarse clock waits out the rest). Replaces any earlier arming.
  virtual void armAt(absl::Time at) = 0;
  virtual void disarm() = 0;
  virtual bool armed() const = 0;
};

class Dispatcher {
 public:
  virtual ~Dispatcher() = default;
  // The current time, exact. Callers read it once per callback and pass it on.
  virtual absl::Time now() const = 0;
  // A timer calling `cb`, which must outlive it.
  virtual std::unique_ptr<Timer> createTimer(TimerCallback* cb) = 0;
};

}  // namespace airbag
