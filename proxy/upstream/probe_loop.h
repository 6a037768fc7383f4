// A thread with an event loop of its own, for work done once per process on
// behalf of all workers: the health checker's probes, the saturation
// scraper's scrapes and the shared tier's purges each run on one. Work is
// posted from any thread as tasks, which run on the loop's thread one after
// another in the order they were posted.
#pragma once

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

struct event_base;
struct event;

namespace airbag::upstream {

class ProbeLoop {
 public:
  ProbeLoop();
  ~ProbeLoop();  // stops the thread
  ProbeLoop(const ProbeLoop&) = delete;
  ProbeLoop& operator=(const ProbeLoop&) = delete;

  // The loop's base, for the timers and clients of the work it runs.
  event_base* base() const { return base_.get(); }
  // Starts the thread; the loop waits for posts even while it has nothing to
  // do. Tasks posted before it run once it has started.
  void start();
  // Stops the thread (if started) and joins it: the loop ends after the tasks
  // it is running, those still queued are dropped unrun, and nothing runs on
  // the loop afterwards. Not from the loop's thread.
  void stop();
  // Thread-safe. Runs `task` on the loop's thread soon, after every task
  // posted before it. Tasks queued together run in one pass of the loop, so
  // no timer of the loop fires between them.
  void post(std::function<void()> task);

 private:
  void wake();
  static void wakeCb(int, short, void* arg);
  void onWake();

  // The wake-up is an eventfd the loop reads, so posting from another thread
  // needs no libevent thread support.
  int wake_fd_ = -1;
  std::unique_ptr<event_base, void (*)(event_base*)> base_;
  std::unique_ptr<event, void (*)(event*)> wake_;
  absl::Mutex mu_;
  std::vector<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace airbag::upstream
