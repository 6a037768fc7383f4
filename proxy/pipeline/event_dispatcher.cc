// Timers on a libevent loop; see event_dispatcher.h.
#include "proxy/pipeline/event_dispatcher.h"

#include <event2/event.h>

#include <algorithm>

namespace airbag::pipeline {
namespace {

class EventTimer final : public Timer {
 public:
  EventTimer(event_base* base, const Clock& clock, TimerCallback* cb) : clock_(clock), cb_(cb) {
    event_assign(&ev_, base, -1, 0, &EventTimer::fire, this);
  }
  ~EventTimer() override { event_del(&ev_); }

  void armAt(absl::Time at) override {
    at_ = at;
    absl::Duration d = std::max(at - clock_.now(), absl::ZeroDuration());
    timeval tv = absl::ToTimeval(d);
    evtimer_add(&ev_, &tv);
  }
  void disarm() override { event_del(&ev_); }
  bool armed() const override { return evtimer_pending(&ev_, nullptr) != 0; }

 private:
  static void fire(int, short, void* arg) {
    auto* self = static_cast<EventTimer*>(arg);
    if (self->clock_.now() < self->at_) {
      self->armAt(self->at_);  // the coarse loop clock fired early
      return;
    }
    self->cb_->onTimer();
  }

  const Clock& clock_;
  TimerCallback* cb_;
  event ev_;
  absl::Time at_;
};

}  // namespace

std::unique_ptr<Timer> EventDispatcher::createTimer(TimerCallback* cb) {
  return std::make_unique<EventTimer>(base_, clock_, cb);
}

}  // namespace airbag::pipeline
