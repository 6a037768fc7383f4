// The once-per-process probing thread; see probe_loop.h.
#include "proxy/upstream/probe_loop.h"

#include <event2/event.h>

namespace airbag::upstream {

ProbeLoop::ProbeLoop()
    : base_(event_base_new(), &event_base_free),
      wake_(event_new(base_.get(), -1, EV_PERSIST, &ProbeLoop::wakeCb, this), &event_free) {
  event_add(wake_.get(), nullptr);
}

ProbeLoop::~ProbeLoop() { stop(); }

void ProbeLoop::start() {
  thread_ = std::thread([this] { event_base_loop(base_.get(), EVLOOP_NO_EXIT_ON_EMPTY); });
}

void ProbeLoop::stop() {
  if (!thread_.joinable()) return;
  event_base_loopbreak(base_.get());
  thread_.join();
}

void ProbeLoop::post(std::function<void()> apply) {
  {
    absl::MutexLock l(&mu_);
    pending_ = std::move(apply);
  }
  event_active(wake_.get(), 0, 0);
}

void ProbeLoop::wakeCb(int, short, void* arg) { static_cast<ProbeLoop*>(arg)->onWake(); }

void ProbeLoop::onWake() {
  std::function<void()> apply;
  {
    absl::MutexLock l(&mu_);
    apply = std::move(pending_);
    pending_ = nullptr;
  }
  if (apply) apply();
}

}  // namespace airbag::upstream
