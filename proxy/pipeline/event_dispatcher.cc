// Timers on a libevent loop; see event_dispatcher.h.
#include "proxy/pipeline/event_dispatcher.h"

#include <event2/event.h>

#include <algorithm>

namespace airbag::pipeline {
namespace {

// Arming and disarming are mostly bookkeeping: a request arms and moves its
// deadlines several times, and most of them never expire. The libevent timer
// is touched only when the new deadline is earlier than the one already
// scheduled; a later deadline, or a disarmed timer, is settled when the
// scheduled expiry comes (re-armed for the rest, or ignored).
class EventTimer final : public Timer {
 public:
  EventTimer(event_base* base, const Clock& clock, TimerCallback* cb) : clock_(clock), cb_(cb) {
    event_assign(&ev_, base, -1, 0, &EventTimer::fire, this);
  }
  ~EventTimer() override { event_del(&ev_); }

  void armAt(absl::Time at) override {
    at_ = at;
    armed_ = true;
    if (scheduled_ && scheduled_at_ <= at) return;  // it fires early and re-arms
    schedule(at);
  }
  void disarm() override { armed_ = false; }  // a scheduled expiry is then ignored
  bool armed() const override { return armed_; }

 private:
  void schedule(absl::Time at) {
    scheduled_ = true;
    scheduled_at_ = at;
    absl::Duration d = std::max(at - clock_.now(), absl::ZeroDuration());
    timeval tv = absl::ToTimeval(d);
    evtimer_add(&ev_, &tv);
  }

  static void fire(int, short, void* arg) {
    auto* self = static_cast<EventTimer*>(arg);
    self->scheduled_ = false;
    if (!self->armed_) return;
    // Early: the deadline moved later, or the coarse loop clock fired a tick early.
    if (self->clock_.now() < self->at_) {
      self->schedule(self->at_);
      return;
    }
    self->armed_ = false;
    self->cb_->onTimer();
  }

  const Clock& clock_;
  TimerCallback* cb_;
  event ev_;
  absl::Time at_;            // the deadline asked for
  absl::Time scheduled_at_;  // when libevent will call fire()
  bool armed_ = false;
  bool scheduled_ = false;
};

}  // namespace

std::unique_ptr<Timer> EventDispatcher::createTimer(TimerCallback* cb) {
  return std::make_unique<EventTimer>(base_, clock_, cb);
}

}  // namespace airbag::pipeline
