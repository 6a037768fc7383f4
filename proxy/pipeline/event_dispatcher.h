// The Dispatcher of a worker: timers on its libevent loop, time from an exact
// clock. libevent's loop runs on a coarse clock (a precise one costs a
// timerfd_settime per loop pass), so a timer may fire a tick early; it then
// re-arms for the rest, and a deadline is kept to the millisecond.
#pragma once

#include <event2/event_struct.h>

#include "airbag/clock.h"
#include "airbag/dispatcher.h"

struct event_base;

namespace airbag::pipeline {

class EventDispatcher final : public Dispatcher {
 public:
  // `base` and `clock` must outlive the dispatcher and its timers.
  EventDispatcher(event_base* base, const Clock& clock) : base_(base), clock_(clock) {}
  absl::Time now() const override { return clock_.now(); }
  std::unique_ptr<Timer> createTimer(TimerCallback* cb) override;

 private:
  event_base* base_;
  const Clock& clock_;
};

}  // namespace airbag::pipeline
