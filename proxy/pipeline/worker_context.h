// Everything one worker's requests share: its loop and dispatcher, its inbox,
// the current snapshot, its upstream clients, its metrics shard and
// access-log writer, its random generator, and the registry through which an
// inbox wake-up finds its exchange. Owned by the worker; touched only from its
// thread (the inbox alone takes posts from other threads).
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <list>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/time/time.h"
#include "airbag/dispatcher.h"
#include "airbag/upstream_client.h"
#include "proxy/pipeline/inbox.h"
#include "proxy/pipeline/route_metrics.h"
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
namespace airbag::shared_cache {
class Client;
}

namespace airbag::pipeline {

class Exchange;

// Work a worker runs on behalf of no client (a cache revalidation). Owned
// by the worker's context so that shutdown frees whatever is still running.
class BackgroundTask {
 public:
  virtual ~BackgroundTask() = default;
};

struct WorkerContext {
  event_base* base = nullptr;
  Dispatcher* dispatcher = nullptr;
  Inbox* inbox = nullptr;
  std::shared_ptr<const Snapshot> snapshot;
  std::vector<UpstreamClient*> upstreams;  // by snapshot upstream index; owned by the worker
  shared_cache::Client* shared_cache = nullptr;  // cache.shared; owned by the worker
  metrics::WorkerMetrics* metrics = nullptr;
  log::AccessLogWriter* access_log = nullptr;
  std::shared_ptr<spdlog::logger> logger;
  absl::InsecureBitGen rng;
  bool draining = false;
  std::list<std::unique_ptr<BackgroundTask>> background;
  // This worker's metric cells per route, by the route's runtime (which a
  // reload keeps for a route whose name is unchanged).
  absl::flat_hash_map<const RouteRuntime*, std::unique_ptr<RouteMetrics>> route_metrics;

  RouteMetrics& routeMetrics(const RouteRuntime* r) {
    std::unique_ptr<RouteMetrics>& m = route_metrics[r];
    if (!m) m = std::make_unique<RouteMetrics>();
    return *m;
  }

  // The current time, exact (from the dispatcher's clock).
  absl::Time now() const { return dispatcher->now(); }

  // Exchanges by slot, for inbox wake-ups; a freed slot is reused.
  uint32_t addExchange(Exchange* e) {
    if (!free_slots.empty()) {
      uint32_t s = free_slots.back();
      free_slots.pop_back();
      exchanges[s] = e;
      return s;
    }
    exchanges.push_back(e);
    return static_cast<uint32_t>(exchanges.size() - 1);
  }
  void removeExchange(uint32_t slot) {
    exchanges[slot] = nullptr;
    free_slots.push_back(slot);
  }
  // Delivers a kWake message: to the exchange in its slot, if that exchange
  // is still on the message's generation (else the message is stale).
  void deliverWake(const InboxMessage& m);

  // A generation no exchange of this worker has had yet: a stale wake-up can
  // never match a later request, even in a reused slot.
  uint64_t newGeneration() { return ++last_generation; }

  std::vector<Exchange*> exchanges;
  std::vector<uint32_t> free_slots;
  uint64_t last_generation = 0;
};

}  // namespace airbag::pipeline
