// Everything one worker's requests share: its loop, the current snapshot, its
// upstream clients, its metrics shard and access-log writer, its random
// generator. Owned by the worker; touched only from its thread.
#pragma once

#include <event2/event.h>

#include <list>
#include <memory>
#include <vector>

#include "absl/random/random.h"
#include "absl/time/time.h"
#include "airbag/upstream_client.h"
#include "proxy/pipeline/snapshot.h"

namespace spdlog {
class logger;
}
namespace airbag::metrics {
class WorkerMetrics;
}
namespace airbag::log {
class AccessLogWriter;
}

namespace airbag::pipeline {

// Work a worker runs on behalf of no client (a cache revalidation). Owned
// by the worker's context so that shutdown frees whatever is still running.
class BackgroundTask {
 public:
  virtual ~BackgroundTask() = default;
};

struct WorkerContext {
  event_base* base = nullptr;
  std::shared_ptr<const Snapshot> snapshot;
  std::vector<UpstreamClient*> upstreams;  // by snapshot upstream index; owned by the worker
  metrics::WorkerMetrics* metrics = nullptr;
  log::AccessLogWriter* access_log = nullptr;
  std::shared_ptr<spdlog::logger> logger;
  absl::InsecureBitGen rng;
  bool draining = false;
  std::list<std::unique_ptr<BackgroundTask>> background;

  // The exact time, for the few instants a deadline is measured from.
  static absl::Time preciseNow() { return absl::Now(); }

  // The loop's cached time: read once per loop pass, not per call, from a
  // coarse clock (a few ms of resolution). Good for statistics and windows;
  // deadlines use preciseNow().
  absl::Time now() const {
    timeval tv;
    event_base_gettimeofday_cached(base, &tv);
    return absl::TimeFromTimeval(tv);
  }
};

}  // namespace airbag::pipeline
