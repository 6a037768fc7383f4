// A test's own event loop: owned, and run pass by pass until a condition
// holds, bounded in time.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <functional>
#include <memory>

namespace airbag::http::testing {

struct EventBaseFree {
  void operator()(event_base* b) const { event_base_free(b); }
};
using EventBasePtr = std::unique_ptr<event_base, EventBaseFree>;

// Runs loop passes of at most 2 ms until `done` (true) or 5 s pass (false).
inline bool runUntil(event_base* base, const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    timeval tv{0, 2000};
    event_base_loopexit(base, &tv);
    event_base_loop(base, EVLOOP_ONCE);
  }
  return true;
}

}  // namespace airbag::http::testing
