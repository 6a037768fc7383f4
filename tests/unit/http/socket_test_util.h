// What the socket tests share: their own event loop, run pass by pass until
// a condition holds (bounded in time), and recognisable test bytes.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

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

// `n` bytes of a pattern that starts at `seed`: a shifted or dropped byte shows.
inline std::string pattern(size_t n, char seed) {
  std::string s(n, ' ');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 23);
  return s;
}

}  // namespace airbag::http::testing
