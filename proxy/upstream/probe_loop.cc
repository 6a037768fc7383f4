// The once-per-process loop thread; see probe_loop.h.
#include "proxy/upstream/probe_loop.h"

#include <event2/event.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace airbag::upstream {

ProbeLoop::ProbeLoop()
    : wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      base_(event_base_new(), &event_base_free),
      wake_(event_new(base_.get(), wake_fd_, EV_READ | EV_PERSIST, &ProbeLoop::wakeCb, this),
            &event_free) {
  event_add(wake_.get(), nullptr);
}

ProbeLoop::~ProbeLoop() {
  stop();
  wake_.reset();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void ProbeLoop::start() {
  thread_ = std::thread([this] { event_base_loop(base_.get(), EVLOOP_NO_EXIT_ON_EMPTY); });
}

void ProbeLoop::stop() {
  if (!thread_.joinable()) return;
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  wake();
  thread_.join();
  std::vector<std::function<void()>> dropped;
  absl::MutexLock l(&mu_);
  dropped.swap(tasks_);
}

void ProbeLoop::post(std::function<void()> task) {
  {
    absl::MutexLock l(&mu_);
    tasks_.push_back(std::move(task));
  }
  wake();
}

void ProbeLoop::wake() {
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
}

void ProbeLoop::wakeCb(int, short, void* arg) { static_cast<ProbeLoop*>(arg)->onWake(); }

void ProbeLoop::onWake() {
  uint64_t n;
  (void)!::read(wake_fd_, &n, sizeof(n));
  std::vector<std::function<void()>> tasks;
  {
    absl::MutexLock l(&mu_);
    if (stopping_) {
      event_base_loopbreak(base_.get());
      return;
    }
    tasks.swap(tasks_);
  }
  for (std::function<void()>& task : tasks) task();
}

}  // namespace airbag::upstream
