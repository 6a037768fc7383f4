// A thread with an event loop of its own, for work done once per process on
// behalf of all workers: the health checker's probes and the saturation
// scraper's scrapes each run on one. Changes (a reload's new targets) are
// posted from any thread and applied on the loop's; the latest replaces any
// not yet applied.
#pragma once

#include <functional>
#include <memory>
#include <thread>

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
  // Starts the thread; the loop waits for posts even while it has nothing to do.
  void start();
  // Stops the thread (if started); nothing runs on the loop afterwards.
  void stop();
  // Thread-safe. Runs `apply` on the loop's thread soon; a later post
  // replaces one not yet run.
  void post(std::function<void()> apply);

 private:
  static void wakeCb(int, short, void* arg);
  void onWake();

  std::unique_ptr<event_base, void (*)(event_base*)> base_;
  std::unique_ptr<event, void (*)(event*)> wake_;
  absl::Mutex mu_;
  std::function<void()> pending_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace airbag::upstream
