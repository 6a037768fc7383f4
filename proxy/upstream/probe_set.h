// What the health checker and the saturation scraper share: one ProbeLoop,
// and on it one object per upstream target (a prober, a scrape), all made
// anew from each update, on the loop's thread.
#pragma once

#include <sys/socket.h>

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "airbag/config.h"
#include "proxy/upstream/curl_library.h"
#include "proxy/upstream/probe_loop.h"

namespace airbag::upstream {

// An upstream to reach from the loop; the probing kind adds the shared state
// its readings go to.
struct ProbeTarget {
  UpstreamConfig config;  // a copy: the loop outlives any one snapshot
  sockaddr_storage address{};
  bool has_address = false;
};

// The loop and its `Worker`s, one per `Target` that `make` gives one to.
template <typename Target, typename Worker>
class ProbeSet {
 public:
  // Loop thread: the worker for `target`, its timers and client on `base`,
  // or null when it needs none.
  using Make = std::function<std::unique_ptr<Worker>(event_base* base, Target target)>;

  explicit ProbeSet(Make make) : make_(std::move(make)) {}
  // Stops the thread, then drops the workers (their timers are on its base).
  ~ProbeSet() {
    loop_.stop();
    workers_.clear();
  }
  ProbeSet(const ProbeSet&) = delete;
  ProbeSet& operator=(const ProbeSet&) = delete;

  // Starts the loop's thread.
  void start() { loop_.start(); }
  // Thread-safe. Replaces every worker by those of `targets`; the verdicts
  // and readings live in the targets' shared state and so carry over.
  // Updates posted together are applied in one pass of the loop, the last
  // one winning before any worker's first timer can fire.
  void update(std::vector<Target> targets) {
    // libcurl (and OpenSSL under it) only when something is probed: a
    // process without probes or https upstreams never pays for them. The
    // configuration that named these targets has opened libcurl (or was
    // refused for want of it); this only keeps a set used on its own safe.
    if (!targets.empty() && !loadCurl().ok()) targets.clear();
    auto shared = std::make_shared<std::vector<Target>>(std::move(targets));
    loop_.post([this, shared] {
      // Simple and rare (a reload): every worker is made anew.
      workers_.clear();
      for (Target& t : *shared)
        if (std::unique_ptr<Worker> w = make_(loop_.base(), std::move(t)))
          workers_.push_back(std::move(w));
    });
  }

 private:
  const Make make_;
  ProbeLoop loop_;
  std::vector<std::unique_ptr<Worker>> workers_;  // the loop's thread only
};

}  // namespace airbag::upstream
